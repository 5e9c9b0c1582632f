"""Attacks on the agent lifecycle against the real binary: revocation racing an approval, the
approval service's capacity, the admin API. Each test names what an attacker tries."""

from __future__ import annotations

import http.client
import json
import socket
import time
import threading
import urllib.error
import urllib.request

import pytest

from conftest import OFFLINE
from mandate_creds import Key, Party, chain, delegation
from test_approvals import Approving, mandate, pending_id

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


def raw_request(method: str, path: str, headers: dict, body: bytes = b"", extra: str = "") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"] + [f"{k}: {v}" for k, v in headers.items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode() + body


def read_responses(s: socket.socket, n: int, timeout: float = 20) -> bytes:
    s.settimeout(timeout)
    data = b""
    while data.count(b"HTTP/1.1 ") < n or not data.rstrip().endswith(b"}"):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def audit_verifies(a) -> None:
    public = {k: v for k, v in json.loads((a.dir / "audit.jwk").read_text()).items() if k != "d"}
    (a.dir / "audit.pub.jwk").write_text(json.dumps(public))
    r = mandate("audit", "verify", "--key", str(a.dir / "audit.pub.jwk"), str(a.dir / "audit.jsonl"))
    assert r.returncode == 0, r.stdout + r.stderr


def test_one_approval_admits_at_most_one_of_two_concurrent_retries(held, ids):
    c = chain(held.alice, [ids.agent()], ["payments:write"])
    body = b'{"amount": 70}'
    aid = pending_id(held.pay(c, body))
    assert held.decide("approve", aid).returncode == 0
    outs: list = []
    threads = [threading.Thread(target=lambda: outs.append(held.pay(c, body, aid))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(o.status for o in outs) == [200, 403, 403, 403], [str(o) for o in outs]
    assert all(o.error == "access_denied" for o in outs if o.status == 403)
    held.proxy.stop()
    forwarded = [r for r in held.audit() if r.get("path") == "/payments" and r["decision"] == "forward"]
    assert len(forwarded) == 1
    audit_verifies(held)


def test_an_approval_id_with_odd_characters_or_twice_is_refused(held, ids):
    c = chain(held.alice, [ids.agent()], ["payments:write"])
    aid = pending_id(held.pay(c, b"{}"))
    for bad in ["../../etc/passwd" + "a" * 20, "a" * 21, "a" * 129, aid + "%00", aid.upper() if aid.upper() != aid else aid + "A"]:
        o = held.pay(c, b"{}", bad)
        assert o.status in (400, 403) and o.error in ("invalid_request", "access_denied"), (bad, str(o))
    s = socket.create_connection(("127.0.0.1", held.port))
    h = c.headers("POST", held.origin + "/payments")
    s.sendall(raw_request("POST", "/payments", h, b"{}", extra=f"Approval-Id: {aid}\r\nApproval-Id: {aid}\r\n"))
    r = read_responses(s, 1)
    s.close()
    assert r.startswith(b"HTTP/1.1 400 ") and b"invalid_request" in r, r[:300]


def test_a_client_gone_while_held_is_recorded_499_and_traffic_flows(held, ids):
    c = chain(held.alice, [ids.agent()], ["payments:write"])
    s = socket.create_connection(("127.0.0.1", held.port))
    s.sendall(raw_request("POST", "/payments", c.headers("POST", held.origin + "/payments"), b'{"gone": 1}'))
    for _ in range(200):
        if "mandate_approvals_pending 1" in metrics(held):
            break
        time.sleep(0.02)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
    s.close()
    # Valid traffic keeps flowing; the proxy noticed the hangup.
    ok = held.proxy.send("GET", "/echo/x", chain(held.alice, [ids.agent()], ["echo"]).headers("GET", held.origin + "/echo/x"))
    assert ok.status == 200, str(ok)
    for _ in range(300):
        if any(r.get("path") == "/payments" for r in held.audit()):
            break
        time.sleep(0.02)
    rec = next(r for r in held.audit() if r.get("path") == "/payments")
    assert rec["status"] == 499 and rec["decision"] == "refuse", rec
    held.proxy.stop()
    audit_verifies(held)


def test_a_request_pipelined_behind_a_held_one_waits_its_turn(held, ids):
    pay = chain(held.alice, [ids.agent()], ["payments:write"])
    echo = chain(held.alice, [ids.agent()], ["echo"])
    s = socket.create_connection(("127.0.0.1", held.port))
    s.sendall(raw_request("POST", "/payments", pay.headers("POST", held.origin + "/payments"), b'{"a": 1}')
              + raw_request("GET", "/echo/behind", echo.headers("GET", held.origin + "/echo/behind")))
    r = read_responses(s, 2)
    s.close()
    first, second = r.split(b"HTTP/1.1 ")[1:3]
    assert first.startswith(b"403 ") and b"approval_pending" in first, r[:400]
    assert second.startswith(b"200 ") and b"/echo/behind" in second, r[:800]


def test_expect_continue_and_chunked_trailers_on_an_approve_route(held, ids):
    c = chain(held.alice, [ids.agent()], ["payments:write"])
    s = socket.create_connection(("127.0.0.1", held.port))
    h = c.headers("POST", held.origin + "/payments")
    head = "\r\n".join(["POST /payments HTTP/1.1", "Host: 127.0.0.1", "Transfer-Encoding: chunked", "Expect: 100-continue",
                        "Connection: close"] + [f"{k}: {v}" for k, v in h.items()]) + "\r\n\r\n"
    s.sendall(head.encode())
    s.settimeout(20)
    assert s.recv(100).startswith(b"HTTP/1.1 100 Continue")
    s.sendall(b"4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\nX-Trailer: evil\r\n\r\n")
    r = read_responses(s, 1)
    s.close()
    assert r.startswith(b"HTTP/1.1 403 ") and b"approval_pending" in r, r[:300]
    aid = [l.split(b": ")[1].decode() for l in r.split(b"\r\n") if l.lower().startswith(b"approval-id:")][0]
    status, details = json_get(f"{held.url}/approvals/{aid}")
    assert status == 200 and details["body_summary"] == '{"a":1}', details


def metrics(a) -> str:
    req = urllib.request.Request(f"http://127.0.0.1:{a.admin_port}/metrics", headers={"Authorization": "Bearer " + ADMIN})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode()


def json_get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def admin_raw(a, data: bytes) -> bytes:
    s = socket.create_connection(("127.0.0.1", a.admin_port))
    s.sendall(data)
    s.settimeout(20)
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    return out


def test_the_admin_api_under_attack(held, ids):
    # The token: a prefix, an extension, another case, empty, two fields.
    for token in [ADMIN[:-1], ADMIN + "t", ADMIN.upper(), "", " " + ADMIN]:
        status, r = held.api("GET", "/v1/agents", token=token)
        assert status == 401 and r["error"] == "invalid_token", (token, r)
    r = admin_raw(held, f"GET /v1/agents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n"
                        f"Authorization: Bearer {ADMIN}\r\nConnection: close\r\n\r\n".encode())
    assert r.startswith(b"HTTP/1.1 401 ") or r.startswith(b"HTTP/1.1 400 "), r[:200]
    assert held.api("GET", "/v1/agents", token="bearer")[0] == 401
    # Strict JSON: duplicate members, not an object, a huge body.
    agent = ids.agent()
    dup = b'{"type": "principal", "type": "agent", "id": "' + agent.did.encode() + b'"}'
    status, r = held.api("POST", "/v1/revocations", raw=dup)
    assert status == 400 and r["error"] == "invalid_request", r
    assert held.api("POST", "/v1/revocations", raw=b'["agent"]')[0] == 400
    r = admin_raw(held, b"POST /v1/revocations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + ADMIN.encode()
                  + b"\r\nContent-Length: 70000\r\n\r\n")  # refused from its head
    assert r.startswith(b"HTTP/1.1 413 "), r[:200]
    # SQL through names and ids: bound values, refused or stored as text.
    status, r = held.api("POST", "/v1/principals", {"did": held.alice.did, "name": "x' OR '1'='1"})
    assert status == 400, r
    evil = "did:key:z6Mk'); DROP TABLE agents; --"
    status, r = held.api("POST", "/v1/revocations", {"type": "agent", "id": evil})
    assert status in (200, 404), r
    status, r = held.api("GET", "/v1/agents")
    assert status == 200 and "agents" in r
    # Path traversal in /v1/agents/{did}.
    for path in ["/v1/agents/..%2Fprincipals", "/v1/agents/%2e%2e/principals", "/v1/agents/../principals"]:
        status, r = held.api("GET", path)
        assert status in (400, 404), (path, status, r)
        assert "principals" not in r or r.get("error"), r
    # A root delegation signed by someone other than the owner it names.
    status, r = held.api("POST", "/v1/principals", {"did": held.alice.did, "name": "alice"})
    assert status == 201, r
    mallory = Party.of(Key.ed25519())
    forged = delegation(held.alice, agent.did, agent.key.thumbprint(), "payments:write", signer=mallory.key)
    status, r = held.api("POST", "/v1/agents", {"owner": "alice", "name": "forged", "delegation": forged})
    assert status == 400 and r["error"] == "invalid_request", r
    # Mallory's own root names Mallory, not the owner.
    own = delegation(mallory, agent.did, agent.key.thumbprint(), "payments:write")
    status, r = held.api("POST", "/v1/agents", {"owner": "alice", "name": "forged", "delegation": own})
    assert status == 400 and "not the owner" in r["error_description"], r
    assert held.api("GET", "/v1/agents")[1]["agents"] == []
    # Valid traffic flowed throughout.
    ok = held.proxy.send("GET", "/echo/x", chain(held.alice, [ids.agent()], ["echo"]).headers("GET", held.origin + "/echo/x"))
    assert ok.status == 200, str(ok)


def outlasts_slow_clients(port: int, places: int, probe) -> object:
    """`places` connections (all the listener takes) each trickle a byte every 2 s, never
    finishing a request; once their time is up (10 s per request), `probe()` is answered again.
    What `probe` returned, or None if it never got through in ~24 s."""
    slow = []
    for _ in range(places):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"G")
        slow.append(s)
    served = None
    for _ in range(12):
        time.sleep(2)
        for s in slow:
            try:
                s.sendall(b"E")
            except OSError:
                pass
        try:
            served = probe()
            break
        except (OSError, urllib.error.URLError, http.client.HTTPException):
            continue
    for s in slow:
        s.close()
    return served


def test_slow_admin_clients_cannot_hold_every_place(held, ids):
    served = outlasts_slow_clients(held.admin_port, 32, lambda: held.api("GET", "/v1/agents"))
    assert served is not None and served[0] == 200, "slow clients kept the admin API's places"


def test_slow_clients_cannot_hold_every_place_of_the_approval_listener(held):
    def discovery():
        c = http.client.HTTPConnection("127.0.0.1", held.approval_port, timeout=3)
        c.request("GET", "/.well-known/openid-configuration")
        return c.getresponse().status

    assert outlasts_slow_clients(held.approval_port, 64, discovery) == 200, "slow clients kept the approval listener's places"
