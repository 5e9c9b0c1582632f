"""Drives the real `mandate` binary: `mandate explain` offline, or `mandate serve` over HTTP."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MANDATE = os.path.abspath(os.environ.get("MANDATE_BIN") or str(ROOT / ".build" / "debug" / "mandate"))
CHALLENGE_CODES = {"invalid_token", "invalid_dpop_proof", "insufficient_scope"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config_text(port: int, upstream_port: int, principals: dict[str, str], log: str, extra: str = "") -> str:
    lines = [f"listen 127.0.0.1:{port};", f"public_origin http://127.0.0.1:{port};",
             f"upstream http://127.0.0.1:{upstream_port};", f"access_log {log};", "workers 2;"]
    lines += [f'principal {did} {{ name "{name}"; }}' for name, did in principals.items()]
    lines += [
        "route /echo/ { scope echo; effect allow; }",
        "route /invoices/ { methods GET; scope invoices:read; effect allow; }",
        "route /upload { methods POST PUT; scope files:write; effect allow; }",
        "route /events { methods GET; scope events:read; effect allow; }",
        "route /payments { methods POST; scope payments:write; effect approve; }",
        "route /admin/ { effect deny; }",
    ]
    return "\n".join(lines) + "\n" + extra


@dataclass
class Outcome:
    """What became of one request, through either transport."""

    status: int
    error: str | None = None          # the machine code (explain's code, or the body's "error")
    description: str = ""
    www_authenticate: str | None = None
    body: dict | None = None          # refusal body, or the upstream's echo
    upstream: dict[str, list[str]] | None = None   # headers the upstream got, lower-case names
    transport: str = ""
    text: str = ""
    response_headers: dict[str, list[str]] = field(default_factory=dict)  # http only, lower-case names

    def header(self, name: str) -> str | None:
        values = (self.upstream or {}).get(name.lower())
        return values[0] if values else None

    def __str__(self):
        return f"{self.transport}: {self.status} {self.error} {self.description!r} {self.text[:400]!r}"


class Explain:
    """`mandate explain`: the same checks as the server, offline, at the current clock."""

    name = "explain"

    def __init__(self, config: str, origin: str):
        self.config = config
        self.origin = origin

    def send(self, method: str, path: str, headers: dict[str, str], body: bytes | None = None) -> Outcome:
        cmd = [MANDATE, "explain", "--config", self.config, "-X", method]
        for k, v in headers.items():
            cmd += ["-H", f"{k}: {v}"]
        r = subprocess.run(cmd + [path], capture_output=True, text=True, timeout=30)
        out = r.stdout
        if out.startswith("forward "):
            upstream: dict[str, list[str]] = {}
            for line in out.splitlines()[1:]:
                k, _, v = line.strip().partition(": ")
                upstream.setdefault(k.lower(), []).append(v)
            return Outcome(200, upstream=upstream, transport="explain", text=out)
        m = re.match(r"refuse (\d+) (\w+): (.*)", out)
        assert m, f"unexpected explain output: {out!r} {r.stderr!r}"
        return Outcome(int(m[1]), m[2], m[3], transport="explain", text=out)


class Proxy:
    """`mandate serve` on a free port, in front of a Python upstream."""

    name = "http"

    def __init__(self, config: str, port: int, log: Path, env: dict[str, str] | None = None):
        self.port = port
        self.origin = f"http://127.0.0.1:{port}"
        self.log = log
        self.out = open(log.with_suffix(".out"), "wb")
        self.proc = subprocess.Popen([MANDATE, "serve", "--config", config], stdout=self.out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=None if env is None else {**os.environ, **env})
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mandate serve exited {self.proc.returncode}: {self.output()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"mandate serve did not accept connections: {self.output()}")
                time.sleep(0.05)

    def output(self) -> str:
        if not self.out.closed:
            self.out.flush()
        return self.log.with_suffix(".out").read_text(errors="replace")[-4000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()

    def connect(self, timeout: float = 30) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def send(self, method: str, path: str, headers: dict[str, str], body: bytes | None = None) -> Outcome:
        c = self.connect()
        try:
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            data = r.read()
            return outcome_from_response(r.status, r.getheaders(), data)
        finally:
            c.close()


def outcome_from_response(status: int, headers: list[tuple[str, str]], data: bytes) -> Outcome:
    lower = {}
    for k, v in headers:
        lower.setdefault(k.lower(), []).append(v)
    text = data.decode("utf-8", "replace")
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    o = Outcome(status, transport="http", text=text, body=body, response_headers=lower,
                www_authenticate=(lower.get("www-authenticate") or [None])[0])
    if status == 200 and isinstance(body, dict) and "headers" in body:
        up: dict[str, list[str]] = {}
        for k, v in body["headers"]:
            up.setdefault(k.lower(), []).append(v)
        o.upstream = up
    elif isinstance(body, dict):
        o.error, o.description = body.get("error"), body.get("error_description", "")
    return o


def challenge_params(value: str) -> dict[str, str]:
    assert value.startswith("DPoP "), value
    return dict(re.findall(r'(\w+)="([^"]*)"', value))


def assert_refused(o: Outcome, status: int, code: str, description: str | None = None):
    assert (o.status, o.error) == (status, code), str(o)
    if description is not None:
        assert description in o.description, str(o)
    if o.transport != "http":
        return
    assert o.upstream is None
    assert isinstance(o.body, dict) and o.body.get("request_id"), str(o)
    assert set(o.body) == {"error", "error_description", "request_id"}, o.body
    assert o.response_headers.get("content-type") == ["application/json"], o.response_headers
    assert o.response_headers.get("mandate-request-id") == [o.body["request_id"]], o.response_headers
    if code in CHALLENGE_CODES:
        assert o.www_authenticate, str(o)
        p = challenge_params(o.www_authenticate)
        assert p["error"] == code and p["algs"] == "EdDSA ES256" and "error_description" in p, o.www_authenticate


def pay(port: int, origin: str, c, body: bytes, approval_id: str | None = None, timeout: float = 60) -> Outcome:
    """POST /payments (an `effect approve` route in config_text) as the chain's holder, with a
    fresh DPoP proof, and `Approval-Id` when retrying under an approval."""
    headers = c.headers("POST", origin + "/payments")
    headers["Content-Type"] = "application/json"
    if approval_id:
        headers["Approval-Id"] = approval_id
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/payments", body=body, headers=headers)
        r = conn.getresponse()
        return outcome_from_response(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


def assert_forwarded(o: Outcome) -> dict[str, list[str]]:
    assert o.status == 200 and o.upstream is not None, str(o)
    if o.transport == "http":  # the client and the upstream know the request by the same id
        assert o.response_headers.get("mandate-request-id") == o.upstream["mandate-request-id"], o.response_headers
    return o.upstream
