"""The agent registry against the real binary: `mandate principal|agent|revoke` on the SQLite file
in state_dir while `mandate serve` runs, the admin API, and revocation on the very next request."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import OFFLINE
from harness import MANDATE, Proxy, assert_forwarded, assert_refused, config_text, free_port
from mandate_creds import Chain, Key, Party, chain, delegation

pytestmark = pytest.mark.skipif(OFFLINE, reason="MANDATE_INTEROP_OFFLINE=1")

TOKEN = "registry-admin-token-" + "k" * 24


def mandate(*args, cwd=None):
    return subprocess.run([MANDATE, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


class RegistryProxy:
    """`mandate serve` with state_dir, an admin listener and its token, in `d`."""

    def __init__(self, d: Path, upstream_port: int, principals: dict, admin: bool = True, more: str = ""):
        self.dir, self.port, self.admin = d, free_port(), free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        (d / "admin.token").write_text(TOKEN + "\n")
        extra = "state_dir state;\n" + more
        if admin:
            extra += f"admin_listen 127.0.0.1:{self.admin};\nadmin_token_file admin.token;\n"
        self.conf = d / "proxy.conf"
        self.conf.write_text(config_text(self.port, upstream_port, principals, "off", extra))
        self.proxy = Proxy(str(self.conf), self.port, d / "proxy.log")

    def cli(self, *args):
        return mandate(*args, "--config", str(self.conf), cwd=self.dir)

    def ok(self, *args):
        r = self.cli(*args)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r

    def register(self, name: str, owner: str = "alice", scope: str = "echo") -> tuple[str, Chain]:
        """A registered agent: its DID, and its chain as the files `agent register` wrote."""
        r = self.ok("agent", "register", "--owner", owner, "--name", name, "--scope", scope, "--ttl", "1h")
        did = r.stdout.split("\n")[0].split(": ")[1]
        return did, self.chain_of(self.dir / name)

    @staticmethod
    def chain_of(d: Path, key: Path | None = None) -> Chain:
        tokens = [l.strip() for l in (d / "chain").read_text().splitlines() if l.strip()]
        return Chain(tokens, Key.from_jwk(json.loads((key or d / "agent.jwk").read_text())))

    def send(self, c: Chain, path: str = "/echo/x"):
        return self.proxy.send("GET", path, c.headers("GET", self.origin + path))

    def api(self, method: str, path: str, body=None, token: str | None = TOKEN, raw: bytes | None = None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin}{path}", data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                return r.status, json.loads(r.read()), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read()), dict(e.headers)

    def agents(self) -> dict:
        return {a["name"]: a for a in json.loads(self.ok("agent", "list", "--json").stdout)["agents"]}

    def stop(self):
        self.proxy.stop()


@pytest.fixture
def rp(tmp_path, upstream, ids):
    p = RegistryProxy(tmp_path, upstream.port, {"Alice": ids.alice.did})
    p.ok("principal", "add", "--name", "alice", "--key", "alice.jwk")
    yield p
    p.stop()


def assert_applied(r):
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "the running proxy has applied it" in r.stderr, r.stderr


def test_a_registered_agent_is_forwarded_and_its_activity_counted(rp):
    owner = json.loads((rp.dir / "alice.jwk").read_text())
    assert "d" in owner and oct((rp.dir / "alice.jwk").stat().st_mode & 0o777) == "0o600"
    did, c = rp.register("bot")
    assert oct((rp.dir / "bot" / "agent.jwk").stat().st_mode & 0o777) == "0o600"
    for i in range(3):
        up = assert_forwarded(rp.send(c, f"/echo/{i}"))
        assert up["mandate-agent"] == [did]
        assert up["mandate-principal"] == [Party.of(Key.from_jwk(owner)).did]
    assert_refused(rp.send(c, "/invoices/1"), 403, "insufficient_scope")
    # Activity reaches the database about once a second: wait for it, no timing asserted.
    deadline = time.monotonic() + 20
    while (a := rp.agents()["bot"])["requests"] < 4:
        assert time.monotonic() < deadline, a
        time.sleep(0.2)
    assert (a["requests"], a["denials"], a["status"], a["owner_name"]) == (4, 1, "active", "alice")
    assert a["last_seen"] and a["last_seen"] > 1_600_000_000_000
    table = rp.ok("agent", "list").stdout
    assert "bot" in table and did in table and "LAST SEEN" in table
    show = json.loads(rp.ok("agent", "show", "bot", "--json").stdout)
    assert show["did"] == did and [d["status"] for d in show["delegations"]] == ["active"]
    assert show["delegations"][0]["scope"] == "echo"


def test_revoking_an_agent_refuses_its_very_next_request_from_the_cache(rp):
    did, c = rp.register("bot")
    assert_forwarded(rp.send(c))  # its chain is now cached
    assert_forwarded(rp.send(c))
    r = rp.cli("revoke", "agent", "bot")
    assert_applied(r)
    assert did in r.stdout
    assert_refused(rp.send(c), 401, "invalid_token", f"agent {did} has been revoked")
    assert rp.agents()["bot"]["status"] == "revoked"
    # Revocation is final.
    r = rp.cli("agent", "resume", "bot")
    assert r.returncode != 0 and "revocation is final" in r.stderr


def test_suspend_refuses_and_resume_admits_again(rp):
    did, c = rp.register("bot")
    assert_forwarded(rp.send(c))
    assert_applied(rp.cli("agent", "suspend", "bot"))
    assert_refused(rp.send(c), 401, "invalid_token", f"agent {did} is suspended")
    assert_applied(rp.cli("agent", "resume", did))
    assert_forwarded(rp.send(c))


def test_revoking_a_delegation_revokes_the_sub_delegations_below_it(rp):
    did, c = rp.register("bot")
    helper = rp.dir / "helper.jwk"
    k = mandate("keygen", "--alg", "ES256", "--out", str(helper))
    helper_did = k.stdout.split("\n")[0].split(": ")[1]
    r = mandate("delegate", "--key", "bot/agent.jwk", "--to", helper_did, "--scope", "echo", "--ttl", "30m",
                "--parent", "@bot/chain", cwd=rp.dir)
    assert r.returncode == 0, r.stderr
    sub = r.stdout.strip()
    # delegate names the new link's jti (what `revoke delegation` takes).
    sub_jti = json.loads(__import__("base64").urlsafe_b64decode(sub.split(".")[1] + "=="))["jti"]
    assert f"mandate: jti {sub_jti}" in r.stderr
    (rp.dir / "sub").mkdir()
    (rp.dir / "sub" / "chain").write_text((rp.dir / "bot" / "chain").read_text() + sub + "\n")
    child = RegistryProxy.chain_of(rp.dir / "sub", helper)
    up = assert_forwarded(rp.send(child))
    assert up["mandate-agent"] == [helper_did] and up["mandate-chain"][0].endswith(helper_did)
    root_jti = json.loads(rp.ok("agent", "show", "bot", "--json").stdout)["delegations"][0]["jti"]
    assert_applied(rp.cli("revoke", "delegation", root_jti))
    assert_refused(rp.send(child), 401, "invalid_token", f"delegation 1 of 2 (root) (jti {root_jti}) has been revoked")
    assert_refused(rp.send(c), 401, "invalid_token", f"(jti {root_jti}) has been revoked")
    assert rp.agents()["bot"]["standing"] == "delegation_revoked"


def test_revoking_a_principal_refuses_every_chain_it_roots(rp, ids):
    _, c = rp.register("bot")
    assert_forwarded(rp.send(c))
    principal = json.loads(rp.ok("principal", "list", "--json").stdout)["principals"]
    alice_did = next(p["did"] for p in principal if p["name"] == "alice")
    assert_applied(rp.cli("revoke", "principal", "alice"))
    assert_refused(rp.send(c), 401, "invalid_token", f"principal {alice_did} has been revoked")
    # The inventory says why the agent is refused, though its own status is active.
    bot = rp.agents()["bot"]
    assert bot["status"] == "active" and bot["standing"] == "principal_revoked"
    r = rp.cli("agent", "register", "--owner", "alice", "--name", "late", "--scope", "echo")
    assert r.returncode != 0 and "has been revoked" in r.stderr
    # After a restart (nothing cached), the refusal still says why.
    rp.proxy.stop()
    rp.proxy = Proxy(str(rp.conf), rp.port, rp.dir / "proxy2.log")
    assert_refused(rp.send(c), 401, "invalid_token", f"principal {alice_did} has been revoked")


def test_a_config_principal_works_beside_the_registry_and_can_be_revoked_there(rp, ids):
    configured = chain(ids.alice, [ids.agent()], ["echo"])
    assert_forwarded(rp.send(configured))
    _, c = rp.register("bot")
    assert_forwarded(rp.send(c))
    assert_forwarded(rp.send(configured))
    listed = {p["name"]: p for p in json.loads(rp.ok("principal", "list", "--json").stdout)["principals"]}
    assert listed["Alice"]["source"] == "config" and listed["alice"]["status"] == "active"
    assert_applied(rp.cli("revoke", "principal", ids.alice.did))
    assert_refused(rp.send(configured), 401, "invalid_token", "has been revoked")
    assert_forwarded(rp.send(c))


def test_a_config_principal_revoked_by_its_name_is_revoked(rp, ids):
    # `principal list` shows a configured principal by its name; `revoke principal NAME` must
    # revoke that principal, not record the name as a partner's person id and revoke nobody.
    configured = chain(ids.alice, [ids.agent()], ["echo"])
    assert_forwarded(rp.send(configured))
    r = rp.cli("revoke", "principal", "Alice")
    assert_applied(r)
    assert ids.alice.did in r.stdout, r.stdout
    assert_refused(rp.send(configured), 401, "invalid_token", f"principal {ids.alice.did} has been revoked")
    listed = {p["name"]: p for p in json.loads(rp.ok("principal", "list", "--json").stdout)["principals"]}
    assert listed["Alice"]["status"] == "revoked" and listed["alice"]["status"] == "active", listed
    table = rp.ok("principal", "list").stdout
    assert any(l.split()[:3] == ["Alice", "revoked", "config"] for l in table.splitlines()), table


def test_the_admin_api_revokes_a_config_principal_by_its_name(tmp_path, upstream, ids):
    p = RegistryProxy(tmp_path, upstream.port, {"Alice": ids.alice.did, "Carol": ids.carol.did})
    try:
        configured = chain(ids.carol, [ids.agent()], ["echo"])
        assert_forwarded(p.send(configured))
        status, body, _ = p.api("POST", "/v1/revocations", {"type": "principal", "id": "Carol"})
        assert status == 200 and body["id"] == ids.carol.did, body
        assert_refused(p.send(configured), 401, "invalid_token", "has been revoked")
        assert_forwarded(p.send(chain(ids.alice, [ids.agent()], ["echo"])))
    finally:
        p.stop()


def test_the_admin_api(rp, ids):
    status, body, _ = rp.api("GET", "/v1/principals")
    assert status == 200 and [p["name"] for p in body["principals"]] == ["alice"]
    bob = Party.of(Key.ed25519())
    status, body, _ = rp.api("POST", "/v1/principals", {"did": bob.did, "name": "bob", "webhook": "https://hooks.example/bob"})
    assert status == 201 and body["did"] == bob.did and body["webhook"] == "https://hooks.example/bob"
    status, body, _ = rp.api("POST", "/v1/principals", {"did": bob.did, "name": "bob2"})
    assert status == 409 and body["error"] == "conflict" and body["request_id"]

    # The API never holds a person's key: the owner's root delegation comes with the agent.
    agent = Party.of(Key.p256())
    root = delegation(bob, agent.did, agent.key.thumbprint(), "echo")
    forged = delegation(Party(Key.ed25519(), bob.did), agent.did, agent.key.thumbprint(), "echo")
    status, body, _ = rp.api("POST", "/v1/agents", {"owner": "bob", "name": "forged", "delegation": forged})
    assert status == 400 and body["error"] == "invalid_request", body
    status, body, _ = rp.api("POST", "/v1/agents", {"owner": "alice", "name": "wrong-owner", "delegation": root})
    assert status == 400 and "not the owner" in body["error_description"], body
    status, body, _ = rp.api("POST", "/v1/agents", {"owner": "nobody", "name": "x", "delegation": root})
    assert status == 404 and body["error"] == "not_found"
    status, body, _ = rp.api("POST", "/v1/agents", {"owner": "bob", "name": "api-bot", "delegation": root})
    assert status == 201 and body["did"] == agent.did and body["owner"] == bob.did, body
    c = Chain([root], agent.key)
    assert_forwarded(rp.send(c))  # bob is an anchor now, on the very next request

    status, body, _ = rp.api("GET", "/v1/agents")
    assert status == 200 and "api-bot" in [a["name"] for a in body["agents"]]
    status, body, _ = rp.api("GET", "/v1/agents/" + agent.did)
    assert status == 200 and body["name"] == "api-bot" and body["delegations"][0]["issuer"] == bob.did
    status, body, _ = rp.api("GET", "/v1/agents/did:key:z6MkUnknown")
    assert status == 404 and body["error"] == "not_found" and set(body) == {"error", "error_description", "request_id"}

    status, body, _ = rp.api("POST", f"/v1/agents/{agent.did}/suspend")
    assert status == 200 and body["status"] == "suspended"
    assert_refused(rp.send(c), 401, "invalid_token", "is suspended")
    status, body, _ = rp.api("POST", f"/v1/agents/{agent.did}/resume")
    assert status == 200 and body["status"] == "active"
    assert_forwarded(rp.send(c))
    status, body, _ = rp.api("POST", "/v1/revocations", {"type": "agent", "id": "api-bot"})
    assert status == 200 and body["id"] == agent.did
    assert_refused(rp.send(c), 401, "invalid_token", "has been revoked")
    status, body, _ = rp.api("POST", "/v1/revocations", {"type": "everything", "id": "x"})
    assert status == 400
    status, body, _ = rp.api("POST", "/v1/registry/refresh")
    assert status == 200 and body["version"] >= 1

    # Authentication, and the refusals a client relies on.
    for token in [None, "wrong-" + TOKEN, TOKEN[:-1]]:
        status, body, headers = rp.api("GET", "/v1/agents", token=token)
        assert status == 401 and body["error"] == "invalid_token", (token, body)
        assert headers.get("WWW-Authenticate", "").startswith("Bearer")
    status, body, _ = rp.api("POST", "/v1/principals", raw=b"{not json")
    assert status == 400 and body["error"] == "invalid_request"
    status, body, _ = rp.api("POST", "/v1/principals", raw=b'{"did":"did:key:z6MkA","did":"did:key:z6MkB","name":"dup"}')
    assert status == 400 and body["error"] == "invalid_request"  # duplicate members: strict JSON
    status, body, _ = rp.api("POST", "/v1/principals", {"name": "nodid"})
    assert status == 400 and "did is required" in body["error_description"]
    status, body, headers = rp.api("DELETE", "/v1/agents")
    assert status == 405 and headers["Allow"] == "GET, POST"
    status, body, headers = rp.api("GET", f"/v1/agents/{agent.did}/suspend")
    assert status == 405 and headers["Allow"] == "POST"
    status, body, _ = rp.api("GET", "/v1/nothing-here")
    assert status == 404


def test_the_admin_api_needs_a_token_file(tmp_path, upstream, ids):
    p = RegistryProxy(tmp_path, upstream.port, {"Alice": ids.alice.did})
    p.stop()
    p.conf.write_text(p.conf.read_text().replace("admin_token_file admin.token;\n", ""))
    p.proxy = Proxy(str(p.conf), p.port, tmp_path / "proxy2.log")
    try:
        status, body, _ = p.api("GET", "/v1/agents")
        assert status == 404 and "admin_token_file" in body["error_description"]
    finally:
        p.stop()


def test_cli_errors_name_what_is_wrong(rp, tmp_path):
    r = rp.cli("agent", "register", "--owner", "nobody", "--name", "x")
    assert r.returncode != 0 and "unknown owner 'nobody'" in r.stderr
    r = mandate("agent", "list")
    assert r.returncode == 2 and "--config FILE is required" in r.stderr
    bare = tmp_path / "bare.conf"
    bare.write_text(rp.conf.read_text().replace("state_dir state;\n", ""))
    r = mandate("agent", "list", "--config", str(bare))
    assert r.returncode == 1 and f"{bare}: state_dir is not set" in r.stderr
    r = mandate("principal", "list", "--config", str(tmp_path / "missing.conf"))
    assert r.returncode != 0 and "missing.conf" in r.stderr
    r = rp.cli("revoke", "agent", "not-registered")
    assert r.returncode != 0 and "no agent not-registered" in r.stderr
    r = rp.cli("principal", "add", "--name", "alice", "--did", "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK")
    assert r.returncode != 0 and "already registered" in r.stderr
    r = mandate("agent", "--help")
    assert r.returncode == 0 and "agent    register" in r.stdout


def test_without_an_admin_listener_the_proxy_sees_cli_changes_by_polling(tmp_path, upstream, ids):
    p = RegistryProxy(tmp_path, upstream.port, {"Alice": ids.alice.did}, admin=False)
    try:
        p.ok("principal", "add", "--name", "alice", "--key", "alice.jwk")
        _, c = p.register("bot")
        deadline = time.monotonic() + 20
        while (o := p.send(c)).status != 200:  # the new anchor arrives with the next poll
            assert time.monotonic() < deadline, str(o)
            time.sleep(0.05)
        r = p.cli("agent", "suspend", "bot")
        assert r.returncode == 0 and "polls the registry" in r.stderr
        while (o := p.send(c)).status != 401:
            assert time.monotonic() < deadline, str(o)
            time.sleep(0.05)
        assert_refused(o, 401, "invalid_token", "is suspended")
    finally:
        p.stop()


def test_a_registry_principal_is_told_by_webhook_and_approves_with_its_key(tmp_path, upstream, ids):
    """Principals enrolled with `principal add --webhook` are asked like the config's."""
    import http.server
    import queue
    import threading

    got: queue.Queue = queue.Queue()

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            got.put(json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0")))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a):
            pass

    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    approval_port = free_port()
    assert mandate("keygen", "--alg", "EdDSA", "--out", str(tmp_path / "approval.jwk")).returncode == 0
    p = RegistryProxy(tmp_path, upstream.port, {"Alice": ids.alice.did},
                      more=f"approval {{ listen 127.0.0.1:{approval_port}; key approval.jwk; }}\napproval_wait 20s;\n")
    try:
        p.ok("principal", "add", "--name", "carol", "--key", "carol.jwk", "--webhook", f"http://127.0.0.1:{hook.server_address[1]}/carol")
        did, c = p.register("payer", owner="carol", scope="payments:write")
        carol = json.loads(p.ok("principal", "list", "--json").stdout)
        carol_did = next(x["did"] for x in (carol["principals"] if isinstance(carol, dict) else carol) if x["name"] == "carol")
        out: dict = {}

        def pay():
            out["o"] = p.proxy.send("POST", "/payments", {**c.headers("POST", p.origin + "/payments"),
                                                         "Content-Type": "application/json"}, b'{"amount": 7}')
        t = threading.Thread(target=pay)
        t.start()
        told = got.get(timeout=15)
        assert told["approval"]["principal"] == carol_did and told["approval"]["agent"] == did
        # Carol is shown the agent's registered name.
        assert told["approval"]["agent_name"] == "payer" and "agent payer (" in told["message"]
        r = mandate("approve", told["approval"]["id"], "--key", str(tmp_path / "carol.jwk"), "--url", f"http://127.0.0.1:{approval_port}")
        assert r.returncode == 0, r.stdout + r.stderr
        t.join()
        assert out["o"].status == 200, str(out["o"])
    finally:
        p.stop()
        hook.shutdown()


def test_audit_show_finds_a_registered_agent_by_its_name(tmp_path, upstream, ids):
    assert mandate("keygen", "--alg", "EdDSA", "--out", str(tmp_path / "audit.jwk")).returncode == 0
    p = RegistryProxy(tmp_path, upstream.port, {"Alice": ids.alice.did}, more="audit { file audit.jsonl; key audit.jwk; }\n")
    try:
        p.ok("principal", "add", "--name", "alice", "--key", "alice.jwk")
        did, c = p.register("bot")
        assert_forwarded(p.send(c))
    finally:
        p.stop()
    trail = str(tmp_path / "audit.jsonl")
    r = p.cli("audit", "show", "--agent", "bot", trail)
    assert r.returncode == 0, r.stderr
    shown = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(shown) == 1 and shown[0]["agent"] == did
    r = mandate("audit", "show", "--agent", "bot", trail)
    assert r.returncode == 2 and "give --config FILE" in r.stderr
