"""A real HTTP upstream: echoes what it received as JSON, and streams `/events` as SSE."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "Upstream"

    def log_message(self, fmt, *args):  # quiet
        pass

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _handle(self):
        body = self._body()
        if self.path.split("?")[0] == "/events":
            return self._events()
        if self.path.startswith("/echo/bytes/"):  # a large response: /echo/bytes/<n>
            return self._bytes(int(self.path.rsplit("/", 1)[1]))
        echo = {"method": self.command, "path": self.path, "headers": [[k, v] for k, v in self.headers.items()],
                "body_length": len(body), "body_sha256": hashlib.sha256(body).hexdigest()}
        self.server.requests.append(echo)
        out = json.dumps(echo).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def _bytes(self, n: int):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(n))
        self.end_headers()
        block = bytes(range(256)) * 256
        while n:
            self.wfile.write(block[:n])
            n -= min(n, len(block))

    def _events(self):
        """Three SSE events 200 ms apart, chunked; records when each was written."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        sent = []
        self.server.event_times.append(sent)
        for i in range(3):
            if i:
                time.sleep(0.2)
            data = f"id: {i}\nevent: tick\ndata: event {i}\n\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
            sent.append(time.monotonic())
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle


class Upstream(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), EchoHandler)
        self.requests: list[dict] = []
        self.event_times: list[list[float]] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def start(self) -> "Upstream":
        self.thread.start()
        return self

    def stop(self):
        self.shutdown()
        self.server_close()
