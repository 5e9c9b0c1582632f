"""The Txn-Token the upstream receives, verified with the exact code of docs/upstream.md
(jwcrypto) against the JWKS on the real admin listener; rotation on SIGHUP."""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import OFFLINE
from harness import MANDATE, Proxy, assert_forwarded, config_text, free_port, outcome_from_response
from mandate_creds import chain

pytestmark = pytest.mark.skipif(OFFLINE, reason="MANDATE_INTEROP_OFFLINE=1")

ROOT = Path(__file__).resolve().parents[2]


def doc_verifier():
    """verify_txn_token, as docs/upstream.md shows it."""
    text = (ROOT / "docs" / "upstream.md").read_text()
    block = re.search(r"<!-- verify:begin -->\n```python\n(.*?)```\n<!-- verify:end -->", text, re.S)
    assert block, "docs/upstream.md lost its verify block"
    scope: dict = {}
    exec(block.group(1), scope)
    return scope["verify_txn_token"]


def keygen(path: Path) -> str:
    out = subprocess.run([MANDATE, "keygen", "--alg", "EdDSA", "--out", str(path)], capture_output=True, text=True, check=True)
    return dict(line.split(": ", 1) for line in out.stdout.splitlines())["jkt"]


class TxnProxy:
    def __init__(self, d: Path, upstream_port: int, principals: dict, keys: list[str]):
        self.dir = d
        self.port, self.admin = free_port(), free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.conf = d / "proxy.conf"
        self.upstream_port, self.principals = upstream_port, principals
        self.write(keys)
        self.proxy = Proxy(str(self.conf), self.port, d / "access.log")

    def write(self, keys: list[str]):
        block = (f"admin_listen 127.0.0.1:{self.admin};\n"
                 f"txn_token {{ keys {' '.join(keys)}; trust_domain https://trust.example.com; workload mandate-gw; ttl 60s; }}\n")
        self.conf.write_text(config_text(self.port, self.upstream_port, self.principals, str(self.dir / "access.log"), block))

    @property
    def jwks_url(self) -> str:
        return f"http://127.0.0.1:{self.admin}/.well-known/jwks.json"

    def send(self, headers: dict, path="/echo/x"):
        return self.proxy.send("GET", path, headers)


def test_upstream_verifies_the_txn_token_as_the_docs_show(tmp_path, upstream, ids):
    k1 = keygen(tmp_path / "txn-1.jwk")
    p = TxnProxy(tmp_path, upstream.port, {"Alice": ids.alice.did}, ["txn-1.jwk"])
    try:
        verify = doc_verifier()
        agent = ids.agent()
        c = chain(ids.alice, [agent], ["echo invoices:read"])
        h = c.headers("GET", p.origin + "/echo/x")
        h["Txn-Token"] = "forged.by.client"
        up = assert_forwarded(p.send(h))
        assert len(up["txn-token"]) == 1 and up["txn-token"][0] != "forged.by.client"
        claims = verify(up["txn-token"][0], p.jwks_url, "https://trust.example.com")
        assert claims["txn"] == up["mandate-request-id"][0]
        assert claims["sub"] == ids.alice.did
        assert claims["scope"] == "echo invoices:read"
        assert claims["iss"] == claims["req_wl"] == "mandate-gw"
        assert claims["rctx"] == {"req_ip": "127.0.0.1"}
        assert claims["tctx"] == {"agent": agent.did, "chain": [ids.alice.did, agent.did]}
        assert claims["exp"] - claims["iat"] == 60
        header = json.loads(__import__("base64").urlsafe_b64decode(up["txn-token"][0].split(".")[0] + "=="))
        assert header == {"alg": "EdDSA", "typ": "txntoken+jwt", "kid": k1}
        # Another trust domain, or a changed claim, does not verify.
        with pytest.raises(ValueError):
            verify(up["txn-token"][0], p.jwks_url, "https://other.example")
        hd, cl, sg = up["txn-token"][0].split(".")
        forged = json.loads(__import__("base64").urlsafe_b64decode(cl + "=="))
        forged["sub"] = "mallory"
        bad = hd + "." + __import__("base64").urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode() + "." + sg
        with pytest.raises(Exception):
            verify(bad, p.jwks_url, "https://trust.example.com")

        # Rotation: a new key first, the old one still published; SIGHUP, no restart.
        old_token = up["txn-token"][0]
        k2 = keygen(tmp_path / "txn-2.jwk")
        p.write(["txn-2.jwk", "txn-1.jwk"])
        mark = len(p.proxy.output())
        p.proxy.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "reloaded" not in p.proxy.output()[mark:]:
            assert time.monotonic() < deadline, p.proxy.output()
            time.sleep(0.05)
        up2 = assert_forwarded(p.send(c.headers("GET", p.origin + "/echo/y"), "/echo/y"))
        header2 = json.loads(__import__("base64").urlsafe_b64decode(up2["txn-token"][0].split(".")[0] + "=="))
        assert header2["kid"] == k2
        keys = json.loads(urllib.request.urlopen(p.jwks_url).read())["keys"]
        assert [k["kid"] for k in keys] == [k2, k1] and all("d" not in k for k in keys)
        verify(up2["txn-token"][0], p.jwks_url, "https://trust.example.com")
        verify(old_token, p.jwks_url, "https://trust.example.com")  # still valid after the rotation
    finally:
        p.proxy.stop()


def test_admin_listener(tmp_path, upstream, ids):
    keygen(tmp_path / "k.jwk")
    p = TxnProxy(tmp_path, upstream.port, {"Alice": ids.alice.did}, ["k.jwk"])
    try:
        base = f"http://127.0.0.1:{p.admin}"
        for path in ["/healthz", "/readyz"]:
            with urllib.request.urlopen(base + path) as r:
                assert r.status == 200 and json.loads(r.read()) == {"status": "ok"}
        with urllib.request.urlopen(p.jwks_url) as r:
            assert r.headers["Content-Type"] == "application/jwk-set+json"
        for method, path, status in [("GET", "/nope", 404), ("POST", "/healthz", 405)]:
            req = urllib.request.Request(base + path, method=method, data=b"" if method == "POST" else None)
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(req)
            assert e.value.code == status
        # The admin listener is not the traffic listener: no metadata there, no JWKS here.
        c = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
        c.request("GET", "/.well-known/jwks.json")
        assert c.getresponse().status == 401
        c.close()
    finally:
        p.proxy.stop()


def test_metrics_need_the_admin_token(tmp_path, upstream, ids):
    keygen(tmp_path / "k.jwk")
    token = "t0k-" + "x" * 40
    (tmp_path / "admin.token").write_text(token + "\n")
    p = TxnProxy(tmp_path, upstream.port, {"Alice": ids.alice.did}, ["k.jwk"])
    p.proxy.stop()
    text = p.conf.read_text() + "admin_token_file admin.token;\n"
    p.conf.write_text(text)
    p.proxy = Proxy(str(p.conf), p.port, tmp_path / "access.log")
    try:
        c = chain(ids.alice, [ids.agent()], ["echo"])
        for i in range(3):
            assert_forwarded(p.send(c.headers("GET", p.origin + f"/echo/{i}"), f"/echo/{i}"))
        assert p.send({}).status == 401
        url = f"http://127.0.0.1:{p.admin}/metrics"
        for auth in [None, "Bearer wrong", "Basic " + token]:
            req = urllib.request.Request(url, headers={"Authorization": auth} if auth else {})
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(req)
            assert e.value.code == 401
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": "Bearer " + token})) as r:
            body = r.read().decode()
            assert r.headers["Content-Type"].startswith("text/plain")
        assert 'mandate_requests_total{decision="forward",reason=""} 3' in body, body
        assert 'mandate_requests_total{decision="refuse",reason="missing_credential"} 1' in body, body
        assert 'mandate_request_duration_seconds_count 4' in body, body
        assert 'mandate_chain_cache_lookups_total{result="hit"} 2' in body, body
    finally:
        p.proxy.stop()
