"""`effect approve` with an external CIBA provider (`ciba_provider`): the proxy asks the
principal through the provider (CIBA Core 1.0 poll mode) and holds the agent's request until
they answer; the approval is bound to the exact request and used once."""

from __future__ import annotations

import http.client
import json
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from ciba_provider import CIBAProvider
from conftest import OFFLINE
from harness import pay, Proxy, config_text, free_port, outcome_from_response
from mandate_creds import chain
from test_tls import issue, make_ca

pytestmark = pytest.mark.skipif(OFFLINE, reason="MANDATE_INTEROP_OFFLINE=1")


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    d = tmp_path_factory.mktemp("op")
    ca = make_ca("test OP CA")
    (d / "ca.pem").write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    cert, key = issue(ca, "localhost", server=True).write(d, "op")
    # RFC 6749 §2.3.1: the proxy form-encodes the secret before Basic; "+" would read as a space
    # if it did not.
    op = CIBAProvider(cert, key, "mandate-proxy", "op s3cret&+", interval=1)
    op.ca_file = str(d / "ca.pem")
    yield op
    op.stop()


class ApprovingProxy:
    def __init__(self, d: Path, upstream_port: int, principals: dict, provider: CIBAProvider, wait: str = "15s"):
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        (d / "op.secret").write_text("op s3cret&+\n")
        block = (f"approval_wait {wait};\n"
                 f"ciba_provider {provider.issuer} {{ backchannel_endpoint {provider.issuer}/bc-authorize; "
                 f"token_endpoint {provider.issuer}/token; client_id mandate-proxy; client_secret_file op.secret; "
                 f"ca {provider.ca_file}; allow_private_addresses on; }}\n")
        conf = d / "proxy.conf"
        conf.write_text(config_text(self.port, upstream_port, principals, str(d / "access.log"), block))
        self.log = d / "access.log"
        self.proxy = Proxy(str(conf), self.port, d / "proxy.log")

    def pay(self, c, body: bytes, approval_id: str | None = None):
        return pay(self.port, self.origin, c, body, approval_id, timeout=30)


@pytest.fixture(scope="module")
def approving(tmp_path_factory, upstream, ids, provider):
    p = ApprovingProxy(tmp_path_factory.mktemp("approving"), upstream.port, {"Alice": ids.alice.did}, provider)
    yield p
    p.proxy.stop()


def decide_when_asked(provider, decision: str, seen: dict):
    def run():
        rid, r = provider.wait_for_request()
        seen.update(r)
        provider.decide(rid, decision)
    t = threading.Thread(target=run)
    t.start()
    return t


def test_held_request_is_forwarded_once_the_principal_approves(approving, provider, ids):
    agent = ids.agent()
    c = chain(ids.alice, [agent], ["payments:write"])
    seen: dict = {}
    t = decide_when_asked(provider, "approve", seen)
    o = approving.pay(c, b'{"amount": 250, "to": "ACME"}')
    t.join()
    assert o.status == 200, str(o)
    # The person was asked by the principal's identity, and shown the action and its amount.
    assert seen["login_hint"] == ids.alice.did
    assert "POST " + approving.origin + "/payments" in seen["binding_message"] and "amount=250 to=ACME" in seen["binding_message"]
    # The upstream gets the provider's ID token as the receipt.
    receipt = o.header("mandate-approval")
    claims = json.loads(__import__("base64").urlsafe_b64decode(receipt.split(".")[1] + "=="))
    assert claims["aud"] == "mandate-proxy" and claims["sub"] == "person:" + ids.alice.did
    # The body that was approved is the body the upstream got.
    assert o.body["body_sha256"] == __import__("hashlib").sha256(b'{"amount": 250, "to": "ACME"}').hexdigest()
    # The access log is written after the response goes out: wait for its line.
    import time
    deadline = time.monotonic() + 10
    while True:
        lines = [json.loads(l) for l in approving.log.read_text().splitlines() if '"/payments"' in l and '"status":200' in l]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    line = lines[-1]
    assert line["approval"] and line["status"] == 200


def test_denied_request_is_refused(approving, provider, ids):
    c = chain(ids.alice, [ids.agent()], ["payments:write"])
    t = decide_when_asked(provider, "deny", {})
    o = approving.pay(c, b'{"amount": 1}')
    t.join()
    assert o.status == 403 and o.error == "approval_denied", str(o)
    assert o.response_headers.get("approval-id")


def test_pending_then_retry_with_the_id_is_forwarded_once_and_only_for_that_request(tmp_path, upstream, ids, provider):
    p = ApprovingProxy(tmp_path, upstream.port, {"Alice": ids.alice.did}, provider, wait="1s")
    try:
        c = chain(ids.alice, [ids.agent()], ["payments:write"])
        body = b'{"amount": 40}'
        o = p.pay(c, body)
        assert o.status == 403 and o.error == "approval_pending", str(o)
        assert 'error="approval_pending"' in (o.www_authenticate or "")
        aid = o.response_headers["approval-id"][0]
        rid, _ = provider.wait_for_request()
        provider.decide(rid, "approve")
        # Another amount under the same approval is refused, and does not spend it.
        other = p.pay(c, b'{"amount": 4000}', aid)
        assert other.status == 403 and other.error == "access_denied", str(other)
        ok = p.pay(c, body, aid)  # a fresh proof, the same request
        assert ok.status == 200, str(ok)
        again = p.pay(c, body, aid)
        assert again.status == 403 and again.error == "access_denied", str(again)
        forged = p.pay(c, body, "A" * 43)
        assert forged.status == 403 and forged.error == "access_denied"
        bad = p.pay(c, body, "not an id!")
        assert bad.status == 400 and bad.error == "invalid_request"
    finally:
        p.proxy.stop()


def test_provider_down_fails_closed(tmp_path, upstream, ids, provider):
    p = ApprovingProxy(tmp_path, upstream.port, {"Alice": ids.alice.did}, provider, wait="5s")
    provider.down = True
    try:
        o = p.pay(chain(ids.alice, [ids.agent()], ["payments:write"]), b"{}")
        assert o.status == 503 and o.error == "temporarily_unavailable", str(o)
        assert o.response_headers.get("retry-after")
    finally:
        provider.down = False
        p.proxy.stop()
