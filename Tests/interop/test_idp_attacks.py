"""Hostile clients, partners, DID servers and authorization servers against the did:web resolver,
asynchronous admission, partner organisations and OAuth access tokens, through the real binary.
Every server here is a scripted HTTPS server on localhost: it answers what a test tells it to."""

from __future__ import annotations

import concurrent.futures
import hashlib
import hmac
import http.client
import json
import os
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from conftest import OFFLINE
from harness import Proxy, assert_forwarded, assert_refused, config_text, free_port, outcome_from_response
from mandate_creds import Chain, Key, Party, b64u, delegation, jws, proof
from test_tls import issue, make_ca

pytestmark = pytest.mark.skipif(OFFLINE, reason="MANDATE_INTEROP_OFFLINE=1")


class Scripted:
    """HTTPS on localhost: path → handler(method, body) → (status, headers, body); counts hits.
    `gate`, when set, holds every request until it is released (a slow server, without sleeps)."""

    def __init__(self, d: Path, name: str):
        ca = make_ca(f"{name} CA")
        self.ca_file = d / f"{name}-ca.pem"
        self.ca_file.write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
        cert, key = issue(ca, "localhost", server=True).write(d, name)
        self.routes: dict[str, object] = {}
        self.hits: dict[str, int] = {}
        self.bodies: list[bytes] = []
        self.gate: threading.Event | None = None
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def answer(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.lock:
                    outer.hits[self.path] = outer.hits.get(self.path, 0) + 1
                    outer.bodies.append(body)
                    route = outer.routes.get(self.path)
                    gate = outer.gate
                if gate is not None:
                    gate.wait(30)
                status, headers, data = route(self.command, body) if callable(route) else route or (404, {}, b"")
                if isinstance(data, (dict, list)):
                    data = json.dumps(data).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if callable(data):  # a stream without Content-Length, closed at its end (HTTP/1.0)
                    self.end_headers()
                    try:
                        for chunk in data():
                            self.wfile.write(chunk)
                            self.wfile.flush()
                    except OSError:
                        pass
                    return
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = answer
            do_POST = answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.origin = f"https://localhost:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def json(self, path: str, obj, status: int = 200):
        with self.lock:
            self.routes[path] = (status, {"Content-Type": "application/json"}, json.dumps(obj).encode())

    def count(self, path: str) -> int:
        with self.lock:
            return self.hits.get(path, 0)

    def stop(self):
        if self.gate:
            self.gate.set()
        self.httpd.shutdown()


class Running:
    """`mandate serve` with the harness config plus `extra`."""

    def __init__(self, d: Path, upstream_port: int, principals: dict[str, str], extra: str):
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.log = d / "access.log"
        conf = d / "proxy.conf"
        conf.write_text(config_text(self.port, upstream_port, principals, str(self.log), extra))
        self.proxy = Proxy(str(conf), self.port, self.log)

    def send(self, headers: dict, path="/echo/x", method="GET", body: bytes | None = None, timeout=20):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers)
            r = c.getresponse()
            return outcome_from_response(r.status, r.getheaders(), r.read())
        finally:
            c.close()

    def chain(self, ch: Chain, path="/echo/x", method="GET", **kw):
        return self.send(ch.headers(method, self.origin + path), path, method, **kw)

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proxy.proc.pid}/fd"))

    def alive(self) -> bool:
        return self.proxy.proc.poll() is None

    def stop(self):
        self.proxy.stop()


def raw_exchange(port: int, data: bytes, timeout=20, until_responses=1) -> bytes:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while out.count(b"HTTP/1.1 ") < until_responses or not complete(out, until_responses):
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def complete(data: bytes, n: int) -> bool:
    """n responses, each with its Content-Length body, are in."""
    rest = data
    for _ in range(n):
        head, sep, rest = rest.partition(b"\r\n\r\n")
        if not sep:
            return False
        length = next((int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")), 0)
        if len(rest) < length:
            return False
        rest = rest[length:]
    return True


def request_bytes(method: str, path: str, headers: dict, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"] + [f"{k}: {v}" for k, v in headers.items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# --- did:web: hostile DID servers and a hostile agent ----------------------------------------


def did_of(server: Scripted, *path: str) -> str:
    return ":".join([f"did:web:localhost%3A{server.port}", *path])


def doc_path(did: str) -> str:
    parts = did.split(":")[3:]
    return "/" + "/".join(parts) + "/did.json" if parts else "/.well-known/did.json"


def document(did: str, key: Key, frag="key-1") -> dict:
    m = {"id": f"{did}#{frag}", "type": "JsonWebKey2020", "controller": did, "publicKeyJwk": key.public_jwk()}
    return {"id": did, "verificationMethod": [m], "authentication": [f"#{frag}"], "assertionMethod": [f"#{frag}"]}


def publish(server: Scripted, did: str, key: Key, frag="key-1") -> Party:
    server.json(doc_path(did), document(did, key, frag))
    return Party(key, did)


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    s = Scripted(tmp_path_factory.mktemp("hostile-did"), "did-server")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def web(tmp_path_factory, upstream, docs, ids):
    block = (f"did_web {{ ca {docs.ca_file}; allow_private_addresses on; max_size 16k; timeout 3s; "
             "negative_ttl 30s; fetch_rate 100; }\n")
    p = Running(tmp_path_factory.mktemp("web"), upstream.port, {"Alice": ids.alice.did}, block)
    yield p
    p.stop()


def hop(ids, agent: Party, sub_did: str, sub_key: Key, scope="echo") -> Chain:
    """alice → agent (did:key) → sub_did: the agent, holding a real delegation, names any DID."""
    first = delegation(ids.alice, agent.did, agent.key.thumbprint(), scope)
    child = delegation(agent, sub_did, sub_key.thumbprint(), scope, parent=first)
    return Chain([first, child], sub_key)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, upstream, docs, ids):
    """did:web without allow_private_addresses: nothing on this machine may be fetched."""
    block = f"did_web {{ ca {docs.ca_file}; timeout 2s; fetch_rate 100; }}\n"
    p = Running(tmp_path_factory.mktemp("guarded"), upstream.port, {"Alice": ids.alice.did}, block)
    yield p
    p.stop()


@pytest.mark.parametrize("host", [
    "127.0.0.1", "127.1", "2130706433", "0177.0.0.1", "0x7f.0.0.1", "169.254.169.254", "%5B%3A%3A1%5D",
    "%5B%3A%3Affff%3A127.0.0.1%5D", "0x7f000001", "localhost", "localhost%3A{port}", "lOcalhost%3A{port}",
    "ip6-localhost", "127.0.0.1.nip.io", "l\u043ecalhost", "localhost.", "localhost%3A{port}%2F..", "localhost%3A0{port}",
])
def test_ssrf_spellings_of_this_machine_are_never_fetched(guarded, docs, ids, host):
    agent = ids.agent()
    sub = Key.ed25519()
    did = "did:web:" + host.format(port=docs.port)
    before = sum(docs.hits.values())
    o = guarded.chain(hop(ids, agent, did, sub))
    assert o.status == 401 and o.error == "invalid_token", str(o)
    assert sum(docs.hits.values()) == before  # refused by the mapping, or at connect: never served


def test_dns_names_for_private_addresses_are_refused_at_connect(guarded, docs, ids):
    o = guarded.chain(hop(ids, ids.agent(), did_of(docs, "agents", "x"), Key.ed25519()))
    assert_refused(o, 401, "invalid_token", "a private address (set allow_private_addresses on")


def test_redirect_tricks(web, docs, ids):
    agent = ids.agent()
    here = f"https://localhost:{docs.port}"
    cases = {
        "loop": ("/agents/loop/did.json", "invalid_token", "too many redirects"),
        "http": (f"http://localhost:{docs.port}/agents/x/did.json", "invalid_token", "another origin"),
        "schemeless": ("//evil.example/did.json", "invalid_token", "another origin"),
        "userinfo": (f"https://localhost:{docs.port}@evil.example/did.json", "invalid_token", "another origin"),
        "metadata": ("https://169.254.169.254/latest/meta-data/", "invalid_token", "another origin"),
        "otherport": (f"https://localhost:{docs.port + 1}/did.json", "invalid_token", "another origin"),
    }
    for name, (location, code, why) in cases.items():
        did = did_of(docs, "agents", name)
        with docs.lock:
            docs.routes[doc_path(did)] = (302, {"Location": location}, b"")
        assert_refused(web.chain(hop(ids, agent, did, Key.ed25519())), 401, code, why)
    assert docs.count("/agents/loop/did.json") == 4  # four hops, then given up
    # A same-origin hop (any case of the host) is followed, and the document still names the DID.
    sub = Key.ed25519()
    target = did_of(docs, "agents", "target")
    did = did_of(docs, "agents", "hop")
    docs.json(doc_path(target), document(did, sub))
    with docs.lock:
        docs.routes[doc_path(did)] = (307, {"Location": here.replace("localhost", "LOCALHOST") + doc_path(target)}, b"")
    assert_forwarded(web.chain(hop(ids, agent, did, sub)))


def test_hostile_documents(web, docs, ids):
    agent = ids.agent()
    sub = Key.ed25519()

    def refused(name, doc, why, raw: bytes | None = None):
        did = did_of(docs, "agents", "doc-" + name)
        body = raw if raw is not None else json.dumps(doc(did)).encode()
        with docs.lock:
            docs.routes[doc_path(did)] = (200, {"Content-Type": "application/did+json"}, body)
        assert_refused(web.chain(hop(ids, agent, did, sub)), 401, "invalid_token", why)

    def method(did, frag="key-1", **over):
        m = {"id": f"{did}#{frag}", "type": "JsonWebKey2020", "controller": did, "publicKeyJwk": sub.public_jwk()}
        m.update(over)
        return {k: v for k, v in m.items() if v is not None}

    def doc(did, methods, auth=("#key-1",), **over):
        d = {"id": did, "verificationMethod": methods, "authentication": list(auth), "assertionMethod": list(auth)}
        d.update(over)
        return d

    refused("private", lambda d: doc(d, [method(d, publicKeyJwk={**sub.private_jwk()})]), "private")
    refused("hs256", lambda d: doc(d, [method(d, publicKeyJwk={"kty": "oct", "k": b64u(b"k" * 32)})]), "")
    refused("rsa", lambda d: doc(d, [method(d, publicKeyJwk={"kty": "RSA", "n": "AQAB", "e": "AQAB"})]), "")
    refused("alg", lambda d: doc(d, [method(d, publicKeyJwk={**sub.public_jwk(), "alg": "ES256"})]), "")
    refused("both", lambda d: doc(d, [method(d, publicKeyMultibase=sub.did_key()[8:])]), "exactly one")
    refused("other-controller", lambda d: doc(d, [method(d, controller=ids.alice.did)]), "not controlled by the DID")
    refused("no-controller", lambda d: doc(d, [method(d, controller=None)]), "not controlled by the DID")
    refused("foreign-id", lambda d: doc(d, [method(d) | {"id": ids.alice.did + "#key-1"}]), "is not under the DID")
    refused("relative-no-hash", lambda d: doc(d, [method(d) | {"id": "key-1"}], auth=("key-1",)), "is not under the DID")
    refused("prefix-did", lambda d: doc(d, [method(d) | {"id": d + "x#key-1"}]), "is not under the DID")
    refused("twice", lambda d: doc(d, [method(d), method(d)]), "declared twice")
    refused("embedded-twice", lambda d: doc(d, [method(d)], auth=(method(d, publicKeyJwk=Key.ed25519().public_jwk()),)),
            "declared twice")
    refused("many", lambda d: doc(d, [method(d, f"k{i}", publicKeyJwk=None, publicKeyMultibase=sub.did_key()[8:])
                                      for i in range(33)]), "over 32 keys")
    refused("id-case", lambda d: doc(d.replace("localhost", "LOCALHOST"), [method(d)]), "id is not the DID")
    refused("id-pct", lambda d: doc(d.replace("%3A", "%3a"), [method(d)]), "id is not the DID")
    refused("id-array", lambda d: doc(d, [method(d)], id=[d]), "id is not the DID")
    refused("id-nfc", lambda d: doc(d + "\u0301", [method(d)]), "id is not the DID")
    refused("not-array", lambda d: doc(d, [method(d)], authentication="#key-1"), "must be an array")
    deep = lambda d: b'{"id":"' + d.encode() + b'","x":' + b"[" * 40 + b"]" * 40 + b"}"
    did = did_of(docs, "agents", "doc-deep")
    refused("deep", None, "not a JSON object", raw=deep(did))
    refused("dup-key", None, "repeats a member",
            raw=json.dumps(doc(did_of(docs, "agents", "doc-dup-key"), [method(did_of(docs, "agents", "doc-dup-key"))]))
            .encode().replace(b'"id":', b'"id":"x","id":', 1))
    refused("bom", None, "not a JSON object", raw=b"\xef\xbb\xbf" + json.dumps(doc("x", [])).encode())
    refused("array", None, "not a JSON object", raw=b"[]")
    refused("huge", None, "larger than 16384 bytes", raw=b'{"id":"x","pad":[' + b"1," * 10000 + b"1]}")
    # The kid a delegation names must be an absolute assertionMethod id: "#key-1" alone is not one.
    good = did_of(docs, "agents", "doc-good")
    docs.json(doc_path(good), document(good, sub))
    first = delegation(ids.alice, agent.did, agent.key.thumbprint(), "echo")
    child = delegation(agent, good, sub.thumbprint(), "echo", parent=first)
    assert_forwarded(web.chain(Chain([first, child], sub)))
    grand = Key.ed25519()
    for kid in ["#key-1", good + "#key-1#", good.upper() + "#key-1", good + "#KEY-1", good + "%23key-1"]:
        leaf = delegation(Party(sub, good), ids.agent().did, grand.thumbprint(), "echo", parent=child,
                          header_extra={"kid": kid})
        assert_refused(web.chain(Chain([first, child, leaf], grand)), 401, "invalid_token", "kid is not a verification method")


def test_close_delimited_oversized_and_trickled_documents(web, docs, ids):
    """No Content-Length: the cap is on the bytes received; a trickle is cut at the timeout."""
    agent = ids.agent()

    def serve(did, chunks):
        with docs.lock:
            docs.routes[doc_path(did)] = (200, {"Content-Type": "application/did+json"}, chunks)

    big = did_of(docs, "agents", "endless")
    serve(big, lambda: (b"x" * 1024 for _ in range(64)))
    assert_refused(web.chain(hop(ids, agent, big, Key.ed25519())), 401, "invalid_token", "larger than 16384 bytes")
    slow = did_of(docs, "agents", "trickle")

    def trickle():
        for _ in range(40):
            time.sleep(0.25)
            yield b" "

    serve(slow, trickle)
    o = web.chain(hop(ids, agent, slow, Key.ed25519()))
    # Cut at the timeout; a timeout may pass, so it is a 503 to retry, not a bad token.
    assert_refused(o, 503, "temporarily_unavailable", "fetching https://localhost")
    assert "time" in o.description.lower(), str(o)


# --- asynchronous admission: requests that wait on a fetch ----------------------------------


class Held:
    """While open, the DID server holds every request: the fetch is in flight, deterministically."""

    def __init__(self, server: Scripted):
        self.server = server

    def __enter__(self):
        self.gate = threading.Event()
        self.server.gate = self.gate
        return self

    def release(self):
        self.server.gate = None
        self.gate.set()

    def __exit__(self, *exc):
        self.release()


def wait_for(predicate, what: str, limit=20.0):
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_the_loop_serves_others_while_a_fetch_is_in_flight(web, docs, ids):
    sub = Key.ed25519()
    did = did_of(docs, "agents", "held-1")
    publish(docs, did, sub)
    with concurrent.futures.ThreadPoolExecutor(1) as pool, Held(docs) as held:
        waiting = pool.submit(web.chain, hop(ids, ids.agent(), did, sub))
        wait_for(lambda: docs.count(doc_path(did)) == 1, "the fetch started")
        # workers 2: several did:key requests, so both loops are shown not to be blocked.
        for _ in range(4):
            assert_forwarded(web.chain(Chain([delegation(ids.alice, (a := ids.agent()).did, a.key.thumbprint(), "echo")], a.key)))
        assert not waiting.done()
        held.release()
        assert_forwarded(waiting.result(20))


def test_client_gone_while_waiting(web, docs, ids):
    sub = Key.ed25519()
    did = did_of(docs, "agents", "held-gone")
    publish(docs, did, sub)
    with Held(docs) as held:
        ch = hop(ids, ids.agent(), did, sub)
        s = socket.create_connection(("127.0.0.1", web.port))
        s.sendall(request_bytes("GET", "/echo/gone", ch.headers("GET", web.origin + "/echo/gone")))
        wait_for(lambda: docs.count(doc_path(did)) == 1, "the fetch started")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
        s.close()
        time.sleep(0.2)
        held.release()
    wait_for(lambda: any(r.get("path") == "/echo/gone" for r in web.records()), "the request is logged")
    rec = next(r for r in web.records() if r.get("path") == "/echo/gone")
    assert rec["status"] == 499, rec  # the client went away (nginx's 499), as for a forwarded request
    assert web.alive()
    assert_forwarded(web.chain(hop(ids, ids.agent(), did, sub)))


def test_pipelined_requests_and_a_body_behind_a_waiting_request(web, docs, ids):
    sub = Key.ed25519()
    did = did_of(docs, "agents", "held-pipe")
    publish(docs, did, sub)
    a = ids.agent()
    first = delegation(ids.alice, a.did, a.key.thumbprint(), "echo files:write")
    ch = Chain([first, delegation(a, did, sub.thumbprint(), "echo files:write", parent=first)], sub)
    body = os.urandom(50_000)  # larger than one read: part of it waits in the socket
    data = (request_bytes("POST", "/upload", ch.headers("POST", web.origin + "/upload"), body)
            + request_bytes("GET", "/echo/second", ch.headers("GET", web.origin + "/echo/second"))
            + request_bytes("GET", "/echo/third", {"Authorization": "DPoP nonsense"}))
    with concurrent.futures.ThreadPoolExecutor(1) as pool, Held(docs) as held:
        out = pool.submit(raw_exchange, web.port, data, 30, 3)
        wait_for(lambda: docs.count(doc_path(did)) == 1, "the fetch started")
        held.release()
        raw = out.result(30)
    parts = raw.split(b"HTTP/1.1 ")[1:]
    assert [p[:3] for p in parts] == [b"200", b"200", b"401"], raw[:2000]
    echo = json.loads(parts[0].split(b"\r\n\r\n", 1)[1])
    assert echo["path"] == "/upload" and echo["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert json.loads(parts[1].split(b"\r\n\r\n", 1)[1])["path"] == "/echo/second"


def test_many_requests_wait_on_one_fetch(web, docs, ids):
    sub = Key.ed25519()
    did = did_of(docs, "agents", "held-many")
    publish(docs, did, sub)
    n = 40
    with concurrent.futures.ThreadPoolExecutor(n) as pool, Held(docs) as held:
        futures = [pool.submit(web.chain, hop(ids, ids.agent(), did, sub)) for _ in range(n)]
        wait_for(lambda: docs.count(doc_path(did)) == 1, "the fetch started")
        time.sleep(0.3)
        held.release()
        for f in futures:
            assert_forwarded(f.result(30))
    assert docs.count(doc_path(did)) == 1


def test_a_flood_of_unknown_did_web_subjects_is_rate_limited(tmp_path, upstream, docs, ids):
    """A hostile agent (it holds a real delegation) names thousands of fresh did:web delegates."""
    block = f"did_web {{ ca {docs.ca_file}; allow_private_addresses on; fetch_rate 2; negative_ttl 1m; }}\n"
    p = Running(tmp_path, upstream.port, {"Alice": ids.alice.did}, block)
    try:
        agent = ids.agent()
        first = delegation(ids.alice, agent.did, agent.key.thumbprint(), "echo")
        sub = Key.ed25519()
        honest = ids.agent()
        honest_chain = Chain([delegation(ids.alice, honest.did, honest.key.thumbprint(), "echo")], honest.key)
        assert_forwarded(p.chain(honest_chain))
        fds = p.fds()
        before = sum(docs.hits.values())
        start = time.monotonic()

        def one(i):
            c = Chain([first, delegation(agent, did_of(docs, "flood", str(i)), sub.thumbprint(), "echo", parent=first)], sub)
            return p.chain(c).status

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(one, range(300)))
        elapsed = time.monotonic() - start
        fetched = sum(docs.hits.values()) - before
        assert set(statuses) <= {401, 503}, statuses
        assert fetched <= 20 + 2 * elapsed + 2, (fetched, elapsed)  # burst 20, then fetch_rate
        assert statuses.count(503) >= 300 - fetched - 2
        assert_forwarded(p.chain(honest_chain))  # honest traffic is not affected
        assert p.alive() and p.fds() <= fds + 4, (fds, p.fds())
    finally:
        p.stop()


# --- OAuth: a hostile client, a hostile or broken authorization server -----------------------


class HostileAS:
    """Metadata, JWKS and introspection as the test says; tokens signed here with any header."""

    def __init__(self, d: Path, proxy_origin: str):
        self.http = Scripted(d, "hostile-as")
        self.issuer = self.http.origin
        self.audience = proxy_origin
        self.keys = {"ec": Key.p256(), "ed": Key.ed25519()}
        self.metadata()
        self.jwks([{**self.keys["ec"].public_jwk(), "kid": "ec", "use": "sig"}, {**self.keys["ed"].public_jwk(), "kid": "ed"}])
        self.introspection({"active": False})

    def metadata(self, **over):
        self.http.json("/.well-known/oauth-authorization-server",
                       {"issuer": self.issuer, "jwks_uri": self.issuer + "/jwks", **over})

    def jwks(self, keys):
        self.http.json("/jwks", {"keys": keys})

    def introspection(self, answer, status=200):
        self.http.json("/introspect", answer, status)

    def claims(self, **over) -> dict:
        now = int(time.time())
        c = {"iss": self.issuer, "aud": self.audience, "sub": "alice@example.com", "client_id": "agent-app",
             "scope": "echo", "iat": now, "exp": now + 600, "jti": b64u(os.urandom(8))}
        for k, v in over.items():
            if v is None:
                c.pop(k, None)
            else:
                c[k] = v
        return c

    def token(self, kid="ec", key: Key | None = None, header: dict | None = None, claims: bytes | dict | None = None,
              **over) -> str:
        h = {"alg": (key or self.keys[kid]).alg, "typ": "at+jwt", "kid": kid, **(header or {})}
        return jws({k: v for k, v in h.items() if v is not None}, claims if claims is not None else self.claims(**over),
                   key or self.keys[kid])

    def stop(self):
        self.http.stop()


class OAuthSetup:
    def __init__(self, d: Path, upstream_port: int, ids, extra_issuer="", extra=""):
        self.asrv = HostileAS(d, "")
        block = (f"oauth_issuer {self.asrv.issuer} {{ ca {self.asrv.http.ca_file}; allow_private_addresses on; "
                 f"kid_cooldown 1h; {extra_issuer.format(iss=self.asrv.issuer)} }}\n"
                 "route /open/ { scope echo; effect allow; allow_bearer on; }\n"
                 f"route /only-alice/ {{ principals {ids.alice.did}; effect allow; allow_bearer on; }}\n"
                 "route /kelvin/ { scope KYC:read; effect allow; allow_bearer on; }\n" + extra)
        self.proxy = Running(d, upstream_port, {"Alice": ids.alice.did}, block)
        self.asrv.audience = self.proxy.origin  # the tokens are for this proxy

    def bearer(self, tok: str, path="/open/x", extra_headers=None):
        return self.proxy.send({"Authorization": "Bearer " + tok, **(extra_headers or {})}, path)

    def dpop(self, tok: str, key: Key, path="/echo/x", **proof_args):
        return self.proxy.send({"Authorization": "DPoP " + tok,
                                "DPoP": proof(key, "GET", self.proxy.origin + path, tok, **proof_args)}, path)

    def stop(self):
        self.proxy.stop()
        self.asrv.stop()


@pytest.fixture(scope="module")
def oauth(tmp_path_factory, upstream, ids):
    s = OAuthSetup(tmp_path_factory.mktemp("hostile-oauth"), upstream.port, ids)
    yield s
    s.stop()


def test_a_well_formed_token_from_the_hostile_as_passes(oauth):
    """The baseline every refusal below is measured against."""
    up = assert_forwarded(oauth.bearer(oauth.asrv.token()))
    assert up["mandate-principal"] == ["alice@example.com"] and up["mandate-issuer"] == [oauth.asrv.issuer]
    assert_forwarded(oauth.bearer(oauth.asrv.token("ed")))
    assert_forwarded(oauth.bearer(oauth.asrv.token(header={"typ": "AT+JWT"})))
    assert_forwarded(oauth.bearer(oauth.asrv.token(header={"typ": "application/at+jwt"})))
    assert_forwarded(oauth.bearer(oauth.asrv.token(aud=["https://other.example", oauth.asrv.audience])))


def test_algorithm_confusion(oauth):
    a = oauth.asrv
    ec, ed = a.keys["ec"], a.keys["ed"]
    c = b64u(json.dumps(a.claims()).encode())
    for alg in ["HS256", "none", "None", "ES256K", "es256", "RS256", "PS256", "EdDSA "]:
        h = b64u(json.dumps({"alg": alg, "typ": "at+jwt", "kid": "ec"}).encode())
        mac = hmac.new(json.dumps(ec.public_jwk()).encode(), (h + "." + c).encode(), hashlib.sha256).digest()
        for sig in [b"", mac, mac * 2, bytes(64)]:
            o = oauth.bearer(h + "." + c + "." + b64u(sig))
            assert o.status == 401 and o.error == "invalid_token", (alg, str(o))
    # A header naming the other key's algorithm, signed with that other key, under this kid.
    assert_refused(oauth.bearer(a.token("ec", key=ed)), 401, "invalid_token", "algorithm does not match")
    assert_refused(oauth.bearer(a.token("ed", key=ec)), 401, "invalid_token", "algorithm does not match")
    # Keys from the token itself are never used.
    mine = Key.p256()
    for p in [{"jwk": mine.public_jwk()}, {"jku": a.issuer + "/jwks"}, {"x5u": a.issuer}, {"x5c": ["MIIB"]}]:
        assert_refused(oauth.bearer(a.token("ec", key=mine, header=p)), 401, "invalid_token", "is not allowed")
    assert_refused(oauth.bearer(a.token(header={"crit": ["exp"], "exp": 1})), 401, "invalid_token", "crit")


def test_header_and_kid_tricks(oauth):
    a = oauth.asrv
    hits = a.http.count("/jwks")
    for kid in ["../../jwks", "ec\r\nX: y", "EC", "ec ", "", "ec\u0000"]:
        assert_refused(oauth.bearer(a.token("ec", key=a.keys["ec"], header={"kid": kid})), 401, "invalid_token",
                       "kid is not in the issuer's JWKS")
    assert a.http.count("/jwks") - hits <= 1  # kid_cooldown 1h: at most one refetch for all of them
    for kid in [1, None, ["ec"], {"kid": "ec"}]:
        assert_refused(oauth.bearer(a.token("ec", key=a.keys["ec"], header={"kid": kid})), 401, "invalid_token",
                       "kid is required")
    for typ in ["JWT", "at+jwt ", "at+jwt;x=1", "application/at+jwt+x", None, "dpop+jwt", "delegation+jwt"]:
        o = oauth.bearer(a.token(header={"typ": typ}))
        assert o.status == 401 and o.error == "invalid_token", (typ, str(o))


def test_claim_tricks(oauth):
    a = oauth.asrv
    now = int(time.time())
    cases = {
        "iss slash": dict(iss=a.issuer + "/"), "iss case": dict(iss=a.issuer.upper()), "iss array": dict(iss=[a.issuer]),
        "no aud": dict(aud=None), "aud slash": dict(aud=a.audience + "/"), "aud object": dict(aud={"a": a.audience}),
        "aud nested": dict(aud=[[a.audience]]), "aud empty": dict(aud=[]),
        "expired": dict(exp=now - 120), "exp string": dict(exp=str(now + 600)), "exp float": dict(exp=now + 600.5),
        "exp huge": dict(exp=10**30), "exp negative": dict(exp=-1), "exp max": dict(exp=2**63 - 1), "no exp": dict(exp=None),
        "nbf future": dict(nbf=now + 3600), "iat future": dict(iat=now + 3600), "nbf string": dict(nbf="0"),
        "no sub": dict(sub=None), "sub comma": dict(sub="alice,bob"), "sub crlf": dict(sub="alice\r\nX-Evil: 1"),
        "sub space": dict(sub="alice bob"), "sub long": dict(sub="a" * 300), "sub number": dict(sub=1),
        "sub unicode": dict(sub="\u212alice"), "no client": dict(client_id=None), "client comma": dict(client_id="a,b"),
        "act string": dict(act="planner"), "act no sub": dict(act={"act": {"sub": "x"}}),
        "act comma": dict(act={"sub": "a,b"}), "act crlf": dict(act={"sub": "a\r\nb"}),
        "act deep": dict(act={"sub": "a", "act": {"sub": "b", "act": {"sub": "c", "act": {"sub": "d", "act": {"sub": "e"}}}}}),
        "cnf both": dict(cnf={"jkt": "x", "x5t#S256": "y"}), "cnf empty": dict(cnf={}), "cnf string": dict(cnf="jkt"),
        "cnf jkt number": dict(cnf={"jkt": 1}), "scope array": dict(scope=["echo"]),
    }
    for name, over in cases.items():
        o = oauth.bearer(a.token(**over))
        assert o.status == 401 and o.error == "invalid_token", (name, str(o))
    # Duplicate claims: which one would the AS have meant?
    raw = json.dumps(a.claims(sub="alice@example.com")).replace('"sub"', '"sub": "mallory", "sub"', 1).encode()
    assert_refused(oauth.bearer(a.token(claims=raw)), 401, "invalid_token", "duplicate member")


def test_scope_outside_rfc6749_never_reaches_the_upstream(oauth):
    """RFC 6749 §3.3 scope-tokens, as for delegations: no CR/LF into headers, no look-alikes."""
    a = oauth.asrv
    for scope in ["echo\r\nX-Injected: 1", "echo\nx", "echo\u0000", "echo\tx", "echo \"x\"", "echo \\x", "echo caf\u00e9"]:
        o = oauth.bearer(a.token(scope=scope))
        assert_refused(o, 401, "invalid_token", "scope")
    # U+212A KELVIN SIGN is canonically equivalent to K: it must not satisfy a route needing KYC:read.
    assert_refused(oauth.bearer(a.token(scope="\u212aYC:read"), "/kelvin/x"), 401, "invalid_token", "scope")
    assert_forwarded(oauth.bearer(a.token(scope="KYC:read"), "/kelvin/x"))


def test_an_authorization_server_cannot_name_a_did_principal_or_agent(oauth, ids):
    """A route for an enrolled principal (a DID) is not opened by a token whose sub spells that DID:
    the same rule as principal.sub of a partner organisation."""
    a = oauth.asrv
    assert_refused(oauth.bearer(a.token(sub=ids.alice.did), "/only-alice/x"), 401, "invalid_token", "not a DID")
    assert_refused(oauth.bearer(a.token(act={"sub": ids.alice.did})), 401, "invalid_token", "not a DID")
    assert_refused(oauth.bearer(a.token(client_id=ids.agent().did)), 401, "invalid_token", "not a DID")
    assert_refused(oauth.bearer(a.token(), "/only-alice/x"), 403, "access_denied", "principal")


def test_sender_constraint_tricks(oauth):
    a = oauth.asrv
    key = Key.ed25519()
    bound = a.token(cnf={"jkt": key.thumbprint()})
    assert_forwarded(oauth.dpop(bound, key))
    assert_refused(oauth.bearer(bound), 401, "invalid_token", "DPoP-bound")
    assert_refused(oauth.bearer(bound, "/echo/x"), 401, "invalid_token", "DPoP-bound")
    # An unbound token with a proof, and a proof by another key.
    assert_refused(oauth.dpop(a.token(), key), 401, "invalid_token", "not DPoP-bound")
    assert_refused(oauth.dpop(bound, Key.ed25519()), 401, "invalid_dpop_proof")
    # Certificate-bound: never over plain HTTP.
    assert_refused(oauth.bearer(a.token(cnf={"x5t#S256": b64u(bytes(32))}), "/echo/x"), 401, "invalid_token")
    assert_refused(oauth.dpop(a.token(cnf={"x5t#S256": b64u(bytes(32))}), key), 401, "invalid_token", "client certificate")
    # Replay of a proof, and a proof for another token.
    jti = b64u(os.urandom(12))
    assert_forwarded(oauth.dpop(bound, key, jti=jti))
    assert_refused(oauth.dpop(bound, key, jti=jti), 401, "invalid_dpop_proof", "already been used")
    other = a.token(cnf={"jkt": key.thumbprint()})
    o = oauth.proxy.send({"Authorization": "DPoP " + other, "DPoP": proof(key, "GET", oauth.proxy.origin + "/echo/x", bound)})
    assert_refused(o, 401, "invalid_dpop_proof")
    # A plain Bearer token on a DPoP-only route.
    assert_refused(oauth.bearer(a.token(), "/echo/x"), 401, "invalid_token", "sender-constrained")


def test_client_identity_headers_never_reach_the_upstream(oauth, ids):
    a = oauth.asrv
    forged = {"Mandate-Issuer": "https://evil.example", "mandate_issuer": "https://evil.example",
              "MANDATE-ORGANIZATION": "did:web:evil.example", "Mandate-Organization": "did:web:evil.example",
              "Mandate-Principal": ids.alice.did, "mandate-chain": "x", "Mandate_Scope": "admin"}
    up = assert_forwarded(oauth.bearer(a.token(), extra_headers=forged))
    assert up["mandate-issuer"] == [a.issuer]
    assert "mandate-organization" not in up and "mandate_issuer" not in up and "mandate_scope" not in up
    assert up["mandate-principal"] == ["alice@example.com"] and up["mandate-scope"] == ["echo"]
    # A delegation chain: no Mandate-Issuer at all, whatever the client sends.
    ag = ids.agent()
    ch = Chain([delegation(ids.alice, ag.did, ag.key.thumbprint(), "echo")], ag.key)
    up = assert_forwarded(oauth.proxy.send({**ch.headers("GET", oauth.proxy.origin + "/echo/x"), **forged}))
    assert "mandate-issuer" not in up and "mandate-organization" not in up and "mandate_issuer" not in up


def hostile_keys(tmp_path, upstream, ids, setup):
    s = OAuthSetup(tmp_path, upstream.port, ids)
    setup(s.asrv)
    return s


def test_hostile_jwks_and_metadata(tmp_path, upstream, ids):
    ec = lambda a, **o: {**a.keys["ec"].public_jwk(), "kid": "ec", **o}
    cases = {
        # A kid twice: which key? The whole set is refused; with no keys yet, 503.
        "duplicate kid": (lambda a: a.jwks([ec(a), {**Key.p256().public_jwk(), "kid": "ec"}]), 503, "kid ec twice"),
        "issuer mismatch": (lambda a: a.metadata(issuer=a.issuer + "/"), 503, "metadata issuer is not"),
        "issuer missing": (lambda a: a.metadata(issuer=None), 503, "metadata issuer is not"),
        "http jwks_uri": (lambda a: a.metadata(jwks_uri=a.issuer.replace("https", "http") + "/jwks"), 503, "no https jwks_uri"),
        "jwks elsewhere": (lambda a: a.metadata(jwks_uri="https://127.0.0.1:1/jwks"), 503, "keys are not available"),
        "not json": (lambda a: a.http.routes.__setitem__("/jwks", (200, {}, b"<html>")), 503, "not a JSON object"),
        "keys object": (lambda a: a.http.json("/jwks", {"keys": {"ec": ec(a)}}), 503, "not a JSON object"),
        # Keys that are never used to verify: private, symmetric, RSA, for encryption, mislabelled.
        "private key": (lambda a: a.jwks([{**a.keys["ec"].private_jwk(), "kid": "ec"}]), 401, "kid is not in the issuer's JWKS"),
        "symmetric": (lambda a: a.jwks([{"kty": "oct", "k": b64u(b"s" * 32), "kid": "ec"}]), 401, "kid is not in"),
        # An RSA key is an RS256 key (issuers may use it), so an ES256 token under its kid fails the pin.
        "rsa": (lambda a: a.jwks([{"kty": "RSA", "n": b64u(b"\xc1" + os.urandom(255)), "e": "AQAB", "kid": "ec"}]), 401,
                "algorithm does not match the key type"),
        "use enc": (lambda a: a.jwks([ec(a, use="enc")]), 401, "kid is not in"),
        "alg mismatch": (lambda a: a.jwks([ec(a, alg="EdDSA")]), 401, "kid is not in"),
        "off curve": (lambda a: a.jwks([ec(a, y=b64u(bytes(32)))]), 401, "kid is not in"),
    }
    for name, (setup, status, why) in cases.items():
        d = tmp_path / name.replace(" ", "-")
        d.mkdir()
        s = hostile_keys(d, upstream, ids, setup)
        try:
            o = s.bearer(s.asrv.token("ec"))
            assert (o.status, why in o.description) == (status, True), (name, str(o))
        finally:
            s.stop()


# --- introspection: lying answers and a flood of opaque tokens -------------------------------


@pytest.fixture(scope="module")
def introspected(tmp_path_factory, upstream, ids):
    s = OAuthSetup(tmp_path_factory.mktemp("introspected"), upstream.port, ids,
                   extra_issuer="introspection_endpoint {iss}/introspect; client_id rs; client_secret pw; "
                                "introspection_cache 1h; timeout 10s;")
    yield s
    s.stop()


def test_lying_introspection_answers(introspected):
    s = introspected
    a = s.asrv
    now = int(time.time())
    good = {"active": True, "sub": "carol@example.com", "client_id": "agent-app", "scope": "echo", "iss": a.issuer,
            "aud": a.audience, "exp": now + 600}
    cases = [
        ({"active": "true", **{k: v for k, v in good.items() if k != "active"}}, 503, "not an RFC 7662 response"),
        ({k: v for k, v in good.items() if k != "active"}, 503, "not an RFC 7662 response"),
        ({**good, "active": 1}, 503, "not an RFC 7662 response"),
        (b'{"active":true,"active":false}', 503, "not an RFC 7662 response"),
        ({**good, "iss": a.issuer + "/"}, 401, "iss is not"),
        ({**good, "iss": 1}, 401, "iss is not"),
        ({**good, "aud": "https://other.example"}, 401, "aud does not include"),
        ({**good, "aud": ["https://other.example"]}, 401, "aud does not include"),
        ({**good, "exp": now - 5}, 401, "expired"),
        ({**good, "exp": str(now + 600)}, 401, "exp must be a NumericDate"),
        ({**good, "exp": now + 600.5}, 401, "exp must be a NumericDate"),
        ({**good, "sub": "a,b"}, 401, "sub"),
        ({**good, "sub": ids_did()}, 401, "not a DID"),
        ({**good, "scope": "echo\r\nX: y"}, 401, "scope"),
        ({**good, "cnf": {"jkt": "a", "x5t#S256": "b"}}, 401, "cnf"),
        ({**good, "active": False}, 401, "not active"),
    ]
    for i, (answer, status, why) in enumerate(cases):
        if isinstance(answer, bytes):
            with a.http.lock:
                a.http.routes["/introspect"] = (200, {"Content-Type": "application/json"}, answer)
        else:
            a.introspection(answer)
        o = s.bearer(f"opaque-lie-{i}-" + b64u(os.urandom(6)))
        assert o.status == status and why in o.description, (i, str(o))
    a.introspection(good, status=500)
    assert_refused(s.bearer("opaque-500-" + b64u(os.urandom(6))), 503, "temporarily_unavailable", "HTTP 500")
    a.introspection(good)
    tok = "opaque-good-" + b64u(os.urandom(6))
    up = assert_forwarded(s.bearer(tok))
    assert up["mandate-principal"] == ["carol@example.com"]
    # The proxy authenticated itself, and sent the token form-encoded.
    body = a.http.bodies[-1].decode()
    assert body == f"token={tok}&token_type_hint=access_token", body


def ids_did() -> str:
    return Key.ed25519().did_key()


def test_a_flood_of_random_opaque_tokens_is_bounded(introspected):
    """Unauthenticated clients choose the tokens: each unknown one costs the AS a request. While
    the AS is slow, the number asked at once is capped (beyond it, 503), not one per client."""
    s = introspected
    a = s.asrv
    a.introspection({"active": False})
    before = a.http.count("/introspect")
    n = 64
    with concurrent.futures.ThreadPoolExecutor(n) as pool, Held(a.http) as held:
        futures = [pool.submit(s.bearer, "flood-" + b64u(os.urandom(12))) for _ in range(n)]
        # Every request has either reached the AS (held there) or been answered.
        wait_for(lambda: a.http.count("/introspect") - before + sum(f.done() for f in futures) >= n, "all decided")
        asked = a.http.count("/introspect") - before
        held.release()
        outcomes = [f.result(30) for f in futures]
    assert asked <= 16, asked  # introspections in flight are capped
    statuses = [o.status for o in outcomes]
    assert set(statuses) <= {401, 503} and statuses.count(503) >= n - asked, statuses
    for o in outcomes:
        if o.status == 503:
            assert_refused(o, 503, "temporarily_unavailable", "introspection")
            assert o.response_headers.get("retry-after") == ["1"]
    assert s.proxy.alive()
    # Afterwards introspection works again.
    now = int(time.time())
    a.introspection({"active": True, "sub": "carol@example.com", "scope": "echo", "exp": now + 60})
    assert_forwarded(s.bearer("after-flood-" + b64u(os.urandom(6))))


# --- partner organisations: a hostile partner -------------------------------------------------


@pytest.fixture(scope="module")
def partners(tmp_path_factory, upstream, ids):
    org = Party.of(Key.ed25519())
    other = Party.of(Key.p256())
    block = (f'organization {org.did} {{ name "Partner"; principals *@partner.example bob@friends.example; max_scope echo files:write; }}\n'
             f'organization {other.did} {{ name "Other"; principals *@other.example; max_scope echo; }}\n'
             f"route /partners/ {{ organizations {org.did}; scope echo; effect allow; }}\n"
             f"route /alice-only/ {{ principals {ids.alice.did}; effect allow; }}\n")
    p = Running(tmp_path_factory.mktemp("partners"), upstream.port, {"Alice": ids.alice.did}, block)
    p.org, p.other = org, other
    yield p
    p.stop()


def org_root(org: Party, agent: Party, person, scope="echo", **extra) -> Chain:
    return Chain([delegation(org, agent.did, agent.key.thumbprint(), scope, principal=person, **extra)], agent.key)


def test_partner_principal_spoofing(partners, ids):
    org, agent = partners.org, ids.agent()
    up = assert_forwarded(partners.chain(org_root(org, agent, {"sub": "bob@partner.example"}), "/partners/x"))
    assert up["mandate-principal"] == ["bob@partner.example"] and up["mandate-organization"] == [org.did]
    assert_forwarded(partners.chain(org_root(org, agent, {"sub": "bob@friends.example"}), "/partners/x"))
    for person in [{"sub": ids.alice.did}, {"sub": "did:web:partner.example"}, {"sub": "bob@partner.example\r\nX: 1"},
                   {"sub": "a,b@partner.example"}, {"sub": "b" * 250 + "@partner.example"}, {"sub": ""},
                   {"sub": "bob @partner.example"}, {"sub": "b\u00f6b@partner.example"}, {"sub": ["bob@partner.example"]},
                   {"sub": 7}, "bob@partner.example", {"id": "bob@partner.example"}, {"sub": "bob@partner.example\u0000"}]:
        o = partners.chain(org_root(org, agent, person), "/partners/x")
        assert_refused(o, 401, "invalid_token", "principal")
    for who in ["bob@evilpartner.example", "bob@partner.example.evil", "bob@sub.partner.example", "@partner.example",
                "bob@PARTNER.example", "alice@friends.example", "bob@friends.example.", "bob@other.example",
                # One local part, one domain: not someone else's address with the partner's domain appended.
                "mallory@bank.example@partner.example", "@@partner.example"]:
        assert_refused(partners.chain(org_root(org, agent, {"sub": who}), "/partners/x"), 401, "invalid_token",
                       "may not speak for principal")


def test_partner_scope_and_placement(partners, ids):
    org, agent = partners.org, ids.agent()
    person = {"sub": "bob@partner.example"}
    assert_refused(partners.chain(org_root(org, agent, person, scope="echo admin")), 401, "invalid_token", "max_scope")
    assert_refused(partners.chain(org_root(partners.other, agent, {"sub": "bob@other.example"}, scope="files:write")),
                   401, "invalid_token", "max_scope")
    # Widened below the root.
    root_t = delegation(org, agent.did, agent.key.thumbprint(), "echo", principal=person)
    leaf_agent = ids.agent()
    wide = delegation(agent, leaf_agent.did, leaf_agent.key.thumbprint(), "echo files:write", parent=root_t)
    assert_refused(partners.chain(Chain([root_t, wide], leaf_agent.key)), 401, "invalid_token", "wider than the parent")
    # A link below the root naming a principal, and an enrolled principal naming one.
    named = delegation(agent, leaf_agent.did, leaf_agent.key.thumbprint(), "echo", parent=root_t,
                       principal={"sub": "eve@partner.example"})
    assert_refused(partners.chain(Chain([root_t, named], leaf_agent.key)), 401, "invalid_token",
                   "only a root delegation from an organization names a principal")
    alice_root = delegation(ids.alice, agent.did, agent.key.thumbprint(), "echo", principal={"sub": "x@partner.example"})
    assert_refused(partners.chain(Chain([alice_root], agent.key)), 401, "invalid_token", "does not name another principal")
    # An enrolled principal's chain below which the partner signs as a delegate: the partner's link
    # is not a root, so it cannot bring in its people.
    a_root = delegation(ids.alice, org.did, org.key.thumbprint(), "echo")
    org_link = delegation(org, leaf_agent.did, leaf_agent.key.thumbprint(), "echo", parent=a_root,
                          principal={"sub": "bob@partner.example"})
    assert_refused(partners.chain(Chain([a_root, org_link], leaf_agent.key)), 401, "invalid_token", "names a principal")
    # The other partner is not this route's organization; a partner's person is not Alice.
    assert_refused(partners.chain(org_root(partners.other, agent, {"sub": "bob@other.example"}), "/partners/x"),
                   403, "access_denied", "organization")
    assert_refused(partners.chain(org_root(org, agent, person), "/alice-only/x"), 403, "access_denied", "principal")
    # A partner root with prf (pretending to be a middle link) is refused.
    assert_refused(partners.chain(org_root(org, agent, person, prf="x")), 401, "invalid_token", "must not carry prf")


def test_a_chain_of_did_web_agents_is_admitted_on_a_cold_cache(web, docs, ids):
    """Each wait resolves one DID: a chain of max_chain_length (5) did:web delegates, none
    fetched before, needs five waits in a row, and is admitted on its first request."""
    parties = [publish(docs, did_of(docs, "cold", str(i)), Key.ed25519()) for i in range(5)]
    tokens, issuer = [], ids.alice
    for p in parties:
        extra = {} if issuer is ids.alice else {"header_extra": {"kid": issuer.did + "#key-1"}}
        tokens.append(delegation(issuer, p.did, p.key.thumbprint(), "echo", parent=tokens[-1] if tokens else None, **extra))
        issuer = p
    up = assert_forwarded(web.chain(Chain(tokens, parties[-1].key)))
    assert up["mandate-agent"] == [parties[-1].did]
    assert all(docs.count(doc_path(p.did)) == 1 for p in parties)
