"""Attacks on the agent lifecycle against the real binary: revocation racing an approval, the
approval service's capacity, the admin API. Each test names what an attacker tries."""

from __future__ import annotations

import json
import time
import threading
import urllib.error
import urllib.request

import pytest

from conftest import OFFLINE
from mandate_creds import chain
from test_approvals import Approving, pending_id

pytestmark = pytest.mark.skipif(OFFLINE, reason="MANDATE_INTEROP_OFFLINE=1")

ADMIN = "t" * 40  # Approving's admin token


class ApprovingRegistry(Approving):
    """The built-in approval service beside a registry (state_dir) and its admin API."""

    def __init__(self, d, upstream_port: int, wait: str):
        super().__init__(d, upstream_port, wait, more="state_dir state;\n")

    def api(self, method: str, path: str, body=None, token: str | None = ADMIN, raw: bytes | None = None,
            content_type: str = "application/json"):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        headers = {"Content-Type": content_type}
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())


@pytest.fixture
def held(tmp_path, upstream):
    a = ApprovingRegistry(tmp_path, upstream.port, wait="5s")
    yield a
    a.proxy.stop()


def released_after(a, c, body: bytes, aid: str, meanwhile):
    """The retry carrying `aid`, held; `meanwhile()` runs while it is; its outcome."""
    out: dict = {}
    t = threading.Thread(target=lambda: out.update(o=a.pay(c, body, aid)))
    t.start()
    time.sleep(0.3)  # the retry is held by now (or gets the same answer if not)
    meanwhile()
    t.join(30)
    return out["o"]


def test_an_agent_revoked_while_its_request_is_held_is_not_released_by_the_approval(held, ids):
    agent = ids.agent()
    c = chain(held.alice, [agent], ["payments:write"])
    body = b'{"amount": 900, "to": "attacker"}'
    aid = pending_id(held.pay(c, body))

    def revoke_then_approve():
        # The agent is revoked while its request is held; the principal, not knowing, approves.
        status, r = held.api("POST", "/v1/revocations", {"type": "agent", "id": agent.did})
        assert status == 200, r
        d = held.decide("approve", aid)
        assert d.returncode == 0, d.stdout + d.stderr

    o = released_after(held, c, body, aid, revoke_then_approve)
    assert o.status == 401 and o.error == "invalid_token", str(o)
    assert "revoked" in o.description
    records = [r for r in held.audit() if r.get("path") == "/payments"]
    assert [r["decision"] for r in records] == ["refuse", "refuse"], records
    assert records[1]["reason"] == "invalid_token" and records[1]["agent"] == agent.did
    assert records[1]["approval"]["id"] == aid


def test_a_suspended_agent_is_not_released_either(held, ids):
    agent = ids.agent()
    c = chain(held.alice, [agent], ["payments:write"])
    body = b'{"amount": 1}'
    aid = pending_id(held.pay(c, body))
    # Suspension needs a registered agent: register this one with its root delegation.
    status, r = held.api("POST", "/v1/principals", {"did": held.alice.did, "name": "alice"})
    assert status == 201, r
    status, r = held.api("POST", "/v1/agents", {"owner": "alice", "name": "payer", "delegation": c.tokens[0]})
    assert status == 201, r

    def suspend_then_approve():
        status, r = held.api("POST", f"/v1/agents/{agent.did}/suspend")
        assert status == 200 and r["status"] == "suspended", r
        assert held.decide("approve", aid).returncode == 0

    o = released_after(held, c, body, aid, suspend_then_approve)
    assert o.status == 401 and o.error == "invalid_token" and "suspended" in o.description, str(o)
