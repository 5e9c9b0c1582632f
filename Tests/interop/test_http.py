"""The running proxy over real sockets: framing refusals, bodies, streaming, replay, robustness."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time

import pytest

from harness import assert_forwarded, assert_refused, outcome_from_response
from mandate_creds import Chain, chain, delegation


@pytest.fixture
def agent_chain(ids):
    def make(scope="echo files:write events:read"):
        a, b = ids.agent("ES256"), ids.agent("EdDSA")
        return chain(ids.alice, [a, b], [scope, scope])
    return make


def raw_request(method: str, path: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def raw_exchange(port: int, data: bytes, timeout: float = 10):
    """Sends bytes, reads one response; returns an Outcome."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = [tuple(x.strip() for x in ln.split(":", 1)) for ln in lines[1:] if ":" in ln]
        length = next((int(v) for k, v in headers if k.lower() == "content-length"), None)
        if length is not None:
            while len(rest) < length:
                chunk = s.recv(65536)
                if not chunk:
                    break
                rest += chunk
        return outcome_from_response(status, headers, rest[:length] if length is not None else rest)


def cred_headers(proxy, c: Chain, method: str, path: str) -> list[tuple[str, str]]:
    h = c.headers(method, proxy.origin + path.split("?")[0])
    return [("Host", f"127.0.0.1:{proxy.port}")] + list(h.items())


# --- framing: 400 before anything reaches the upstream -------------------------------------------

def test_rejects_content_length_with_transfer_encoding(proxy, upstream, agent_chain):
    before = len(upstream.requests)
    h = cred_headers(proxy, agent_chain(), "POST", "/upload") + [("Content-Length", "5"),
                                                                 ("Transfer-Encoding", "chunked")]
    o = raw_exchange(proxy.port, raw_request("POST", "/upload", h, b"0\r\n\r\n"))
    assert_refused(o, 400, "invalid_request", "Content-Length and Transfer-Encoding")
    assert len(upstream.requests) == before


def test_rejects_two_authorization_headers(proxy, upstream, agent_chain):
    c = agent_chain()
    h = cred_headers(proxy, c, "GET", "/echo/x")
    h.append(("Authorization", "DPoP " + c.leaf))
    before = len(upstream.requests)
    assert_refused(raw_exchange(proxy.port, raw_request("GET", "/echo/x", h)), 400, "invalid_request", "Authorization")
    assert len(upstream.requests) == before


def test_rejects_two_dpop_headers(proxy, agent_chain):
    c = agent_chain()
    h = cred_headers(proxy, c, "GET", "/echo/x")
    h.append(("DPoP", c.headers("GET", proxy.origin + "/echo/x")["DPoP"]))
    assert_refused(raw_exchange(proxy.port, raw_request("GET", "/echo/x", h)), 400, "invalid_request", "DPoP")


def test_rejects_encoded_slash(proxy, agent_chain):
    c = agent_chain()
    o = raw_exchange(proxy.port, raw_request("GET", "/echo/a%2Fb", cred_headers(proxy, c, "GET", "/echo/a%2Fb")))
    assert_refused(o, 400, "invalid_request")


def test_raw_valid_request_forwarded(proxy, agent_chain):
    c = agent_chain()
    assert_forwarded(raw_exchange(proxy.port, raw_request("GET", "/echo/raw", cred_headers(proxy, c, "GET", "/echo/raw"))))


# --- DPoP single use ------------------------------------------------------------------------------

def test_rejects_replayed_proof(proxy, agent_chain):
    c = agent_chain()
    h = c.headers("GET", proxy.origin + "/echo/replay")
    assert_forwarded(proxy.send("GET", "/echo/replay", h))
    assert_refused(proxy.send("GET", "/echo/replay", h), 401, "invalid_dpop_proof", "already been used")


def test_fresh_proof_per_request_on_one_connection(proxy, agent_chain):
    c = agent_chain()
    conn = proxy.connect()
    try:
        for i in range(3):
            conn.request("GET", f"/echo/keepalive/{i}", headers=c.headers("GET", proxy.origin + f"/echo/keepalive/{i}"))
            r = conn.getresponse()
            o = outcome_from_response(r.status, r.getheaders(), r.read())
            assert_forwarded(o)
            assert o.body["path"] == f"/echo/keepalive/{i}"
    finally:
        conn.close()


# --- bodies and streaming -------------------------------------------------------------------------

def test_post_body_forwarded_intact(proxy, agent_chain):
    body = os.urandom(1 << 20)
    o = proxy.send("POST", "/upload", agent_chain().headers("POST", proxy.origin + "/upload"), body)
    assert_forwarded(o)
    assert o.body["method"] == "POST"
    assert o.body["body_length"] == len(body)
    assert o.body["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_chunked_request_body_forwarded_intact(proxy, agent_chain):
    parts = [os.urandom(70_000) for _ in range(5)]
    conn = proxy.connect()
    try:
        conn.request("PUT", "/upload", body=iter(parts), encode_chunked=True,
                     headers=agent_chain().headers("PUT", proxy.origin + "/upload"))
        r = conn.getresponse()
        o = outcome_from_response(r.status, r.getheaders(), r.read())
    finally:
        conn.close()
    assert_forwarded(o)
    assert o.body["body_sha256"] == hashlib.sha256(b"".join(parts)).hexdigest()


def test_server_sent_events_stream_through(proxy, upstream, agent_chain):
    before = len(upstream.event_times)
    conn = proxy.connect()
    arrived: list[float] = []
    text = ""
    try:
        conn.request("GET", "/events", headers=agent_chain().headers("GET", proxy.origin + "/events"))
        r = conn.getresponse()
        assert r.status == 200, r.read()
        assert r.getheader("Content-Type", "").startswith("text/event-stream")
        while len(arrived) < 3:
            chunk = r.read1(65536)
            if not chunk:
                break
            text += chunk.decode()
            while len(arrived) < 3 and f"data: event {len(arrived)}\n\n" in text:
                arrived.append(time.monotonic())
        r.read()
    finally:
        conn.close()
    assert len(arrived) == 3, text
    assert text.index("event 0") < text.index("event 1") < text.index("event 2")
    sent = upstream.event_times[before]
    # Streamed, not buffered: the first event was read before the upstream wrote the last one.
    assert arrived[0] < sent[2], (arrived, sent)


# --- robustness -----------------------------------------------------------------------------------

GARBAGE = [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64),   # a TLS ClientHello
    b"\x00" * 512,
    os.urandom(2048),
    b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: " + b"a" * 70_000 + b"\r\n\r\n",
    b"GET /echo/x HTTP/9.9\r\n\r\n",
    b"G\x7fT / HTTP/1.1\r\n\r\n",
    b"GET /echo/x HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    b"POST /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /echo/x HTTP/1.1\r\nBad Header\r\n\r\n",
    b"\r\n\r\n\r\n\r\n",
]


def test_keeps_serving_after_garbage(proxy, agent_chain):
    held = []
    try:
        for i in range(40):
            s = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
            try:
                s.sendall(GARBAGE[i % len(GARBAGE)])
            except OSError:
                pass
            if i % 4 == 0:  # some wait for the answer: a 4xx or a close, never a 2xx
                try:
                    reply = s.recv(64)
                    assert not reply.startswith(b"HTTP/1.1 2"), reply
                except (socket.timeout, ConnectionResetError):
                    pass
            s.close()
        for _ in range(10):  # half-open requests, held while a valid one is served
            s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
            s.sendall(b"GET /echo/slow HTTP/1.1\r\nHost: x\r\n")
            held.append(s)
        c = agent_chain()
        assert_forwarded(proxy.send("GET", "/echo/after", c.headers("GET", proxy.origin + "/echo/after")))
    finally:
        for s in held:
            s.close()
    c = agent_chain()
    assert_forwarded(proxy.send("GET", "/echo/after2", c.headers("GET", proxy.origin + "/echo/after2")))
    assert proxy.proc.poll() is None


def test_concurrent_valid_requests(proxy, agent_chain):
    results: list = []

    def one(i):
        c = agent_chain()
        results.append(proxy.send("GET", f"/echo/c{i}", c.headers("GET", proxy.origin + f"/echo/c{i}")))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 16
    for o in results:
        assert_forwarded(o)
