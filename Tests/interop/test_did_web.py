"""did:web against a real HTTPS server (Python's http.server over ssl, a certificate made here),
through the real binary: the mapping, the document rules, the fetch guards and the cache."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from conftest import OFFLINE
from harness import Proxy, assert_forwarded, assert_refused, config_text, free_port, outcome_from_response
from mandate_creds import Chain, Key, Party, delegation
from test_tls import issue, make_ca

pytestmark = pytest.mark.skipif(OFFLINE, reason="MANDATE_INTEROP_OFFLINE=1")


class DIDServer:
    """HTTPS on localhost: path → (status, body, headers, delay); counts requests per path."""

    def __init__(self, d: Path):
        self.ca = make_ca("did:web test CA")
        self.ca_file = d / "did-ca.pem"
        self.ca_file.write_bytes(self.ca.cert.public_bytes(serialization.Encoding.PEM))
        cert, key = issue(self.ca, "localhost", server=True).write(d, "did-server")
        self.routes: dict[str, tuple[int, bytes, dict, float]] = {}
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                with outer.lock:
                    outer.hits[self.path] = outer.hits.get(self.path, 0) + 1
                    status, body, headers, delay = outer.routes.get(self.path, (404, b"not found", {}, 0))
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def did(self, *path: str) -> str:
        return ":".join([f"did:web:localhost%3A{self.port}", *path])

    @staticmethod
    def path_of(did: str) -> str:
        parts = did.split(":")[3:]
        return "/" + "/".join(parts) + "/did.json" if parts else "/.well-known/did.json"

    def publish(self, did: str, keys: dict[str, Key], *, authentication=None, assertion=None, doc_id=None,
                status=200, delay=0.0, multibase=False, raw: bytes | None = None, headers=None):
        methods = []
        for frag, k in keys.items():
            m = {"id": f"{did}#{frag}", "type": "Multikey" if multibase else "JsonWebKey2020", "controller": did}
            if multibase:
                m["publicKeyMultibase"] = k.did_key()[len("did:key:"):]
            else:
                m["publicKeyJwk"] = k.public_jwk()
            methods.append(m)
        doc = {"@context": ["https://www.w3.org/ns/did/v1"], "id": doc_id or did, "verificationMethod": methods,
               "authentication": [f"#{f}" for f in (authentication if authentication is not None else keys)],
               "assertionMethod": [f"{did}#{f}" for f in (assertion if assertion is not None else keys)]}
        body = raw if raw is not None else json.dumps(doc).encode()
        with self.lock:
            self.routes[self.path_of(did)] = (status, body, headers or {"Content-Type": "application/did+json"}, delay)

    def count(self, did: str) -> int:
        with self.lock:
            return self.hits.get(self.path_of(did), 0)

    def stop(self):
        self.httpd.shutdown()


def web_party(server: DIDServer, *path: str, key: Key | None = None, frag: str = "key-1", **publish) -> Party:
    p = Party(key or Key.ed25519(), server.did(*path))
    server.publish(p.did, {frag: p.key}, **publish)
    return p


def root(issuer: Party, agent: Party, kid: str, scope: str = "echo", **extra) -> Chain:
    token = delegation(issuer, agent.did, agent.key.thumbprint(), scope, header_extra={"kid": kid}, **extra)
    return Chain([token], agent.key)


@pytest.fixture(scope="module")
def dids(tmp_path_factory):
    s = DIDServer(tmp_path_factory.mktemp("didweb"))
    yield s
    s.stop()


class WebProxy:
    def __init__(self, d: Path, upstream_port: int, principals: dict[str, str], block: str):
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        conf = d / "proxy.conf"
        conf.write_text(config_text(self.port, upstream_port, principals, str(d / "access.log"), block))
        self.proxy = Proxy(str(conf), self.port, d / "access.log")

    def send(self, chain: Chain, path: str = "/echo/x"):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            c.request("GET", path, headers=chain.headers("GET", self.origin + path))
            r = c.getresponse()
            return outcome_from_response(r.status, r.getheaders(), r.read())
        finally:
            c.close()

    def stop(self):
        self.proxy.stop()


@pytest.fixture(scope="module")
def principal(dids) -> Party:
    return web_party(dids, key=Key.ed25519())


@pytest.fixture(scope="module")
def web_proxy(tmp_path_factory, upstream, dids, principal, ids):
    block = (f"did_web {{ ca {dids.ca_file}; allow_private_addresses on; ttl 2s; max_stale 1h; negative_ttl 3s; "
             "kid_cooldown 1s; max_size 4k; }\n")
    p = WebProxy(tmp_path_factory.mktemp("webproxy"), upstream.port, {"Web": principal.did, "Alice": ids.alice.did}, block)
    yield p
    p.stop()


def test_did_web_principal_delegates_to_a_did_key_agent(web_proxy, dids, principal, ids):
    agent = ids.agent()
    up = assert_forwarded(web_proxy.send(root(principal, agent, principal.did + "#key-1")))
    assert up["mandate-principal"] == [principal.did]
    assert up["mandate-chain"] == [f"{principal.did},{agent.did}"]


def test_did_web_agent_with_a_multibase_p256_key(web_proxy, dids, ids):
    agent = web_party(dids, "agents", "p256", key=Key.p256(), multibase=True)
    up = assert_forwarded(web_proxy.send(root(ids.alice, agent, ids.alice.did + "#" + ids.alice.did[8:])))
    assert up["mandate-agent"] == [agent.did]


def test_document_rules(web_proxy, dids, principal, ids):
    a = ids.alice
    alice_kid = a.did + "#" + a.did[8:]
    # The document's id must be the DID.
    liar = Party(Key.ed25519(), dids.did("agents", "liar"))
    dids.publish(liar.did, {"key-1": liar.key}, doc_id=dids.did("agents", "someone-else"))
    assert_refused(web_proxy.send(root(a, liar, alice_kid)), 401, "invalid_token", "id is not the DID")
    # The agent's proof key must be one of its authentication keys.
    signer = Party(Key.ed25519(), dids.did("agents", "signer"))
    dids.publish(signer.did, {"key-1": signer.key}, authentication=[])
    assert_refused(web_proxy.send(root(a, signer, alice_kid)), 401, "invalid_token", "cnf.jkt is not the thumbprint of a key of sub")
    # A delegation's kid must be an assertionMethod key of the issuer.
    p2 = web_party(dids, "people", "p2", assertion=[])
    assert_refused(web_proxy.send(root(p2, ids.agent(), p2.did + "#key-1")), 401, "invalid_token", "root issuer is not an enrolled principal")
    assert_refused(web_proxy.send(root(principal, ids.agent(), principal.did + "#key-9")), 401, "invalid_token",
                   "kid is not a verification method of the issuer")
    # Duplicate members are refused, as everywhere else.
    dup = Party(Key.ed25519(), dids.did("agents", "dup"))
    dids.publish(dup.did, {}, raw=f'{{"id":"{dup.did}","id":"{dup.did}"}}'.encode())
    assert_refused(web_proxy.send(root(a, dup, alice_kid)), 401, "invalid_token", "repeats a member")


def test_fetch_guards(web_proxy, dids, ids):
    a = ids.alice
    kid = a.did + "#" + a.did[8:]
    big = Party(Key.ed25519(), dids.did("agents", "big"))
    dids.publish(big.did, {"key-1": big.key}, raw=b'{"id":"' + big.did.encode() + b'","pad":"' + b"x" * 8000 + b'"}')
    assert_refused(web_proxy.send(root(a, big, kid)), 401, "invalid_token", "larger than 4096 bytes")
    away = Party(Key.ed25519(), dids.did("agents", "away"))
    dids.routes[dids.path_of(away.did)] = (302, b"", {"Location": "https://example.com/did.json"}, 0)
    assert_refused(web_proxy.send(root(a, away, kid)), 401, "invalid_token", "redirected to another origin")
    moved = Party(Key.ed25519(), dids.did("agents", "moved"))
    dids.publish(dids.did("agents", "moved-here"), {"key-1": moved.key})
    # A same-origin redirect is followed, but the document must still carry the requested id.
    dids.routes[dids.path_of(moved.did)] = (301, b"", {"Location": dids.path_of(dids.did("agents", "moved-here"))}, 0)
    assert_refused(web_proxy.send(root(a, moved, kid)), 401, "invalid_token", "id is not the DID")
    gone = Party(Key.ed25519(), dids.did("agents", "gone"))
    assert_refused(web_proxy.send(root(a, gone, kid)), 401, "invalid_token", "HTTP 404")


def test_one_fetch_for_many_waiting_requests(web_proxy, dids, ids):
    a = ids.alice
    kid = a.did + "#" + a.did[8:]
    agent = web_party(dids, "agents", "slow", delay=1.0)
    chains = [root(a, agent, kid) for _ in range(12)]
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(web_proxy.send, chains))
    for o in outcomes:
        assert_forwarded(o)
    assert dids.count(agent.did) == 1


def test_failures_are_remembered(web_proxy, dids, ids):
    a = ids.alice
    kid = a.did + "#" + a.did[8:]
    nobody = Party(Key.ed25519(), dids.did("agents", "nobody"))
    for _ in range(5):
        assert_refused(web_proxy.send(root(a, nobody, kid)), 401, "invalid_token", "HTTP 404")
    assert dids.count(nobody.did) == 1  # within negative_ttl (3 s): no second fetch


def test_stale_on_error_and_key_rotation(web_proxy, dids, principal, ids):
    agent = ids.agent()
    kid = principal.did + "#key-1"
    assert_forwarded(web_proxy.send(root(principal, agent, kid)))
    # The server fails; past the ttl the last document still serves (max_stale).
    path = dids.path_of(principal.did)
    good = dids.routes[path]
    dids.routes[path] = (500, b"down", {}, 0)
    time.sleep(2.5)
    assert_forwarded(web_proxy.send(root(principal, agent, kid)))
    # Rotation: key-1 goes, key-2 comes. Past the ttl (and the negative ttl of the failure),
    # chains signed with key-1, even one verified and cached before, are walked again and refused.
    new_key = Key.ed25519()
    dids.publish(principal.did, {"key-2": new_key})
    cached = root(principal, agent, kid)
    assert_forwarded(web_proxy.send(cached))
    rotated = Party(new_key, principal.did)
    deadline = time.monotonic() + 40
    while True:
        o = web_proxy.send(root(rotated, agent, principal.did + "#key-2"))
        if o.status == 200:
            break
        assert time.monotonic() < deadline, str(o)
        time.sleep(0.5)
    fresh = Chain(cached.tokens, agent.key)
    assert_refused(web_proxy.send(fresh), 401, "invalid_token", "kid is not a verification method of the issuer")
    dids.routes[path] = good


def test_unknown_kid_refetches_once_per_cooldown(web_proxy, dids, ids):
    # An agent delegates with a key it has just added to its document.
    a = ids.alice
    kid = a.did + "#" + a.did[8:]
    agent = web_party(dids, "agents", "grows")
    helper = ids.agent()
    first = delegation(a, agent.did, agent.key.thumbprint(), "echo", header_extra={"kid": kid})
    assert_forwarded(web_proxy.send(Chain([first], agent.key)))
    before = dids.count(agent.did)
    # The agent adds key-2 and delegates with it: jkt of the parent still names key-1, so the
    # chain is refused; what matters is that the unknown kid caused one refetch, not one per request.
    extra = Key.ed25519()
    dids.publish(agent.did, {"key-1": agent.key, "key-2": extra})
    child = delegation(Party(extra, agent.did), helper.did, helper.key.thumbprint(), "echo",
                       header_extra={"kid": agent.did + "#key-2"}, parent=first)
    time.sleep(1.2)  # past kid_cooldown (1 s), within the ttl (2 s)
    for _ in range(4):
        o = web_proxy.send(Chain([first, child], helper.key))
        assert o.status == 401
    assert dids.count(agent.did) - before == 1
    assert "signing key is not the key the parent delegated to" in o.description, str(o)


def test_private_addresses_need_allowing(tmp_path, upstream, dids, ids):
    block = f"did_web {{ ca {dids.ca_file}; }}\n"
    p = WebProxy(tmp_path, upstream.port, {"Alice": ids.alice.did}, block)
    try:
        agent = web_party(dids, "agents", "private")
        o = p.send(root(ids.alice, agent, ids.alice.did + "#" + ids.alice.did[8:]))
        assert_refused(o, 401, "invalid_token", "a private address (set allow_private_addresses on")
        assert dids.count(agent.did) == 0
    finally:
        p.stop()


def test_tls_to_the_document_server_is_verified(tmp_path, upstream, dids, ids):
    block = "did_web { allow_private_addresses on; }\n"  # the system's CAs do not know the test CA
    p = WebProxy(tmp_path, upstream.port, {"Alice": ids.alice.did}, block)
    try:
        agent = web_party(dids, "agents", "untrusted")
        o = p.send(root(ids.alice, agent, ids.alice.did + "#" + ids.alice.did[8:]))
        assert_refused(o, 401, "invalid_token", "fetching https://localhost")
        assert "certificate" in o.description.lower() or "ssl" in o.description.lower(), str(o)
    finally:
        p.stop()


def test_fetch_rate_limit_fails_closed(tmp_path, upstream, dids, ids):
    block = f"did_web {{ ca {dids.ca_file}; allow_private_addresses on; fetch_rate 1; }}\n"
    p = WebProxy(tmp_path, upstream.port, {"Alice": ids.alice.did}, block)
    try:
        kid = ids.alice.did + "#" + ids.alice.did[8:]
        outcomes = [p.send(root(ids.alice, web_party(dids, "flood", str(i)), kid)) for i in range(6)]
        statuses = [o.status for o in outcomes]
        assert statuses.count(503) >= 2, statuses
        for o in outcomes:
            if o.status == 503:
                assert_refused(o, 503, "temporarily_unavailable", "rate-limited")
                assert o.response_headers.get("retry-after") == ["1"]
            else:
                assert_forwarded(o)
    finally:
        p.stop()


def test_config_needs_did_web_for_a_did_web_principal(tmp_path, dids):
    import subprocess
    from harness import MANDATE
    conf = tmp_path / "p.conf"
    conf.write_text(f"upstream http://127.0.0.1:9;\npublic_origin http://127.0.0.1:8;\nprincipal {dids.did()} {{ name \"W\"; }}\n")
    r = subprocess.run([MANDATE, "serve", "--config", str(conf), "--check"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and f"{conf}:3: principal {dids.did()} is a did:web: enable fetching it with did_web" in r.stderr, r.stderr


# --- partner organisations as trust anchors (the cross-organisation gateway) ------------------


def test_partner_organization_speaks_for_its_people(tmp_path, upstream, dids, ids):
    partner = web_party(dids, "partner")
    block = (f"did_web {{ ca {dids.ca_file}; allow_private_addresses on; }}\n"
             f'organization {partner.did} {{ name "Partner"; principals *@partner.example; max_scope echo; }}\n'
             f"route /partners/ {{ organizations {partner.did}; scope echo; effect allow; }}\n")
    p = WebProxy(tmp_path, upstream.port, {"Alice": ids.alice.did}, block)
    try:
        agent = ids.agent()
        kid = partner.did + "#key-1"
        c = root(partner, agent, kid, principal={"sub": "bob@partner.example"})
        up = assert_forwarded(p.send(c, "/partners/orders"))
        assert up["mandate-principal"] == ["bob@partner.example"]
        assert up["mandate-organization"] == [partner.did]
        assert up["mandate-chain"] == [f"{partner.did},{agent.did}"]
        # The partner cannot speak for someone outside its domain, nor grant beyond max_scope.
        assert_refused(p.send(root(partner, agent, kid, principal={"sub": "eve@elsewhere.example"}), "/partners/x"),
                       401, "invalid_token", "may not speak for principal eve@elsewhere.example")
        assert_refused(p.send(root(partner, agent, kid, scope="echo files:write", principal={"sub": "bob@partner.example"}),
                              "/partners/x"), 401, "invalid_token", "beyond the organization's max_scope")
        assert_refused(p.send(root(partner, agent, kid), "/partners/x"), 401, "invalid_token", "must name its principal")
        # Its people are not the proxy's own principals: routes that need an organization refuse those.
        alice_chain = root(ids.alice, agent, ids.alice.did + "#" + ids.alice.did[8:])
        assert_refused(p.send(alice_chain, "/partners/x"), 403, "access_denied", "does not admit the organization")
        # A client cannot claim an organization by header.
        forged = c.headers("GET", p.origin + "/echo/x")
        forged["Mandate-Organization"] = "did:web:evil.example"
        conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
        conn.request("GET", "/echo/x", headers=forged)
        o = outcome_from_response(*(lambda r: (r.status, r.getheaders(), r.read()))(conn.getresponse()))
        conn.close()
        up = assert_forwarded(o)
        assert up["mandate-organization"] == [partner.did]
        log = [json.loads(line) for line in (tmp_path / "access.log").read_text().splitlines()]
        assert any(r.get("organization") == partner.did and r["principal"] == "bob@partner.example" for r in log)
    finally:
        p.stop()


def test_a_failing_document_server_is_503_not_the_agents_fault(web_proxy, dids, ids):
    """A server error or an unreachable server may pass: 503 with Retry-After, not a 401 that
    tells the agent its token is bad. A 404 is an answer: 401."""
    a = ids.alice
    kid = a.did + "#" + a.did[8:]
    down = Party(Key.ed25519(), dids.did("agents", "down"))
    dids.routes[dids.path_of(down.did)] = (503, b"maintenance", {}, 0)
    o = web_proxy.send(root(a, down, kid))
    assert_refused(o, 503, "temporarily_unavailable", "HTTP 503")
    assert o.response_headers.get("retry-after") == ["1"]
    nowhere = Party(Key.ed25519(), f"did:web:localhost%3A{free_port()}:x")
    assert_refused(web_proxy.send(root(a, nowhere, kid)), 503, "temporarily_unavailable", "fetching https://localhost")
