"""`effect approve` end to end with the built-in approval service: the agent's request is held,
the principal approves with the real `mandate approve` (a receipt signed with their key), and
the request goes upstream with that receipt; denial, expiry, a replayed receipt and another
request under the same approval are refused; the audit trail names the approval."""

from __future__ import annotations

import hashlib
import http.client
import json
import subprocess
import threading
import time
from pathlib import Path

import pytest
from jwcrypto import jwk, jws

from conftest import OFFLINE
from harness import pay, MANDATE, Proxy, config_text, free_port, outcome_from_response
from mandate_creds import Key, Party, chain

pytestmark = pytest.mark.skipif(OFFLINE, reason="MANDATE_INTEROP_OFFLINE=1")


def mandate(*args):
    return subprocess.run([MANDATE, *args], capture_output=True, text=True, timeout=60)


class Approving:
    def __init__(self, d: Path, upstream_port: int, wait: str, expires: str = "60s", more: str = ""):
        for name in ("alice", "approval", "audit"):
            assert mandate("keygen", "--alg", "EdDSA", "--out", str(d / f"{name}.jwk")).returncode == 0
        self.alice_jwk = json.loads((d / "alice.jwk").read_text())
        self.alice = Party.of(Key.from_jwk(self.alice_jwk))
        self.port, self.approval_port = free_port(), free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.url = f"http://127.0.0.1:{self.approval_port}"
        self.admin_port = free_port()
        (d / "admin.token").write_text("t" * 40 + "\n")
        extra = (f"approval_wait {wait};\nadmin_listen 127.0.0.1:{self.admin_port};\nadmin_token_file admin.token;\n"
                 f"approval {{ listen 127.0.0.1:{self.approval_port}; key approval.jwk; expires_in {expires}; interval 1s; }}\n"
                 "audit { file audit.jsonl; key audit.jwk; }\n" + more)
        (d / "proxy.conf").write_text(config_text(self.port, upstream_port, {"Alice": self.alice.did}, "off", extra))
        self.dir = d
        self.proxy = Proxy(str(d / "proxy.conf"), self.port, d / "proxy.log")

    def pay(self, c, body: bytes, approval_id: str | None = None):
        return pay(self.port, self.origin, c, body, approval_id, timeout=60)

    def decide(self, verb: str, approval_id: str):
        return mandate(verb, approval_id, "--key", str(self.dir / "alice.jwk"), "--url", self.url)

    def audit(self) -> list[dict]:
        return [json.loads(l) for l in (self.dir / "audit.jsonl").read_text().splitlines()]


@pytest.fixture
def approving(tmp_path, upstream):
    a = Approving(tmp_path, upstream.port, wait="2s")
    yield a
    a.proxy.stop()


def pending_id(o) -> str:
    assert o.status == 403 and o.error == "approval_pending", str(o)
    assert 'error="approval_pending"' in (o.www_authenticate or "")
    return o.response_headers["approval-id"][0]


def test_held_request_is_forwarded_the_moment_it_is_approved(approving, ids):
    c = chain(approving.alice, [ids.agent()], ["payments:write"])
    body = b'{"amount": 250, "to": "ACME"}'
    aid = pending_id(approving.pay(c, body))
    # The retry is held again; `mandate approve` releases it before its wait is over.
    out: dict = {}
    t = threading.Thread(target=lambda: out.update(o=approving.pay(c, body, aid)))
    start = time.monotonic()
    t.start()
    time.sleep(0.3)
    r = approving.decide("approve", aid)
    assert r.returncode == 0, r.stdout + r.stderr
    t.join()
    o = out["o"]
    assert o.status == 200, str(o)
    assert time.monotonic() - start < 2, "forwarded only after approval_wait, not when approved"
    assert o.body["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert o.header("approval-id") is None  # the agent's field stays at the proxy
    # The receipt the upstream gets verifies with the principal's own key, and binds this request.
    receipt = o.header("mandate-approval")
    token = jws.JWS()
    token.deserialize(receipt)
    token.verify(jwk.JWK(**{k: v for k, v in approving.alice_jwk.items() if k != "d"}))
    claims = json.loads(token.payload)
    assert claims["decision"] == "approve" and claims["sub"] == aid and claims["iss"] == approving.alice.did
    bound = claims["request"]
    assert bound["method"] == "POST" and bound["url"] == approving.origin + "/payments"
    assert bound["body_sha256"] == __import__("base64").urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=").decode()
    # Once: the same approval does not admit the request again.
    again = approving.pay(c, body, aid)
    assert again.status == 403 and again.error == "access_denied", str(again)
    records = [r for r in approving.audit() if r.get("path") == "/payments"]
    forwarded = [r for r in records if r["decision"] == "forward"]
    assert len(forwarded) == 1 and forwarded[0]["approval"]["id"] == aid
    assert forwarded[0]["approval"]["approver"] == approving.alice.did
    assert forwarded[0]["approval"]["receipt_sha256"] == __import__("base64").urlsafe_b64encode(
        hashlib.sha256(receipt.encode()).digest()).rstrip(b"=").decode()
    assert records[0]["reason"] == "approval_pending" and records[0]["approval"]["id"] == aid


def test_an_approval_never_admits_another_amount(approving, ids):
    c = chain(approving.alice, [ids.agent()], ["payments:write"])
    aid = pending_id(approving.pay(c, b'{"amount": 5}'))
    assert approving.decide("approve", aid).returncode == 0
    other = approving.pay(c, b'{"amount": 5000}', aid)
    assert other.status == 403 and other.error == "access_denied", str(other)
    # Another agent of the same principal cannot use it either.
    stranger = chain(approving.alice, [ids.agent()], ["payments:write"])
    assert approving.pay(stranger, b'{"amount": 5}', aid).error == "access_denied"
    # The approved request itself still goes through, once.
    assert approving.pay(c, b'{"amount": 5}', aid).status == 200


def test_denied_request_is_refused(approving, ids):
    c = chain(approving.alice, [ids.agent()], ["payments:write"])
    aid = pending_id(approving.pay(c, b"{}"))
    r = approving.decide("deny", aid)
    assert r.returncode == 0, r.stderr
    o = approving.pay(c, b"{}", aid)
    assert o.status == 403 and o.error == "approval_denied", str(o)
    assert o.response_headers["approval-id"] == [aid]
    assert approving.decide("approve", aid).returncode != 0  # decided already


def test_unanswered_approval_expires(tmp_path, upstream, ids):
    a = Approving(tmp_path, upstream.port, wait="1s", expires="2s")
    try:
        c = chain(a.alice, [ids.agent()], ["payments:write"])
        aid = pending_id(a.pay(c, b"{}"))
        time.sleep(2.2)
        o = a.pay(c, b"{}", aid)
        assert o.status == 403 and o.error == "approval_expired", str(o)
        assert a.decide("approve", aid).returncode != 0
    finally:
        a.proxy.stop()


def test_a_receipt_signed_by_another_key_is_refused(approving, ids, tmp_path):
    c = chain(approving.alice, [ids.agent()], ["payments:write"])
    aid = pending_id(approving.pay(c, b"{}"))
    assert mandate("keygen", "--alg", "EdDSA", "--out", str(tmp_path / "mallory.jwk")).returncode == 0
    r = mandate("approve", aid, "--key", str(tmp_path / "mallory.jwk"), "--url", approving.url)
    assert r.returncode != 0
    assert approving.pay(c, b"{}", aid).error == "approval_pending"


def test_metrics_count_pending_approvals(approving, ids):
    def pending() -> int:
        conn = http.client.HTTPConnection("127.0.0.1", approving.admin_port, timeout=10)
        conn.request("GET", "/metrics", headers={"Authorization": "Bearer " + "t" * 40})
        text = conn.getresponse().read().decode()
        return int(next(l.split()[1] for l in text.splitlines() if l.startswith("mandate_approvals_pending ")))

    assert pending() == 0
    c = chain(approving.alice, [ids.agent()], ["payments:write"])
    aid = pending_id(approving.pay(c, b"{}"))
    assert pending() == 1
    assert approving.decide("deny", aid).returncode == 0
    assert pending() == 0
