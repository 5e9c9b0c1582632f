"""OAuth 2.0 JWT access tokens (RFC 9068) from a real authorization server (Authlib, over HTTPS),
verified by the real binary: discovery, the JWKS cache and key rotation, sender constraint by
DPoP, the RFC 8693 act chain, and plain Bearer only where a route allows it."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import time
import urllib.parse
import urllib.request

import pytest
from cryptography.hazmat.primitives import serialization

from conftest import OFFLINE
from harness import Proxy, assert_forwarded, assert_refused, config_text, free_port, outcome_from_response
from mandate_creds import Key, b64u, proof
from oauth_server import AuthServer
from test_tls import issue, make_ca

pytestmark = [pytest.mark.skipif(OFFLINE, reason="MANDATE_INTEROP_OFFLINE=1"),
              pytest.mark.filterwarnings("ignore:.*joserfc.*")]  # Authlib points at its successor


@pytest.fixture(scope="module")
def auth(tmp_path_factory):
    d = tmp_path_factory.mktemp("as")
    ca = make_ca("test AS CA")
    (d / "ca.pem").write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    cert, key = issue(ca, "localhost", server=True).write(d, "as")
    port = free_port()
    s = AuthServer(cert, key, audience=f"http://127.0.0.1:{port}")
    s.ca_file = str(d / "ca.pem")
    s.proxy_port = port
    yield s
    s.stop()


def token(auth: AuthServer, *, scope="echo", on_behalf_of=None, actors=(), dpop_key: Key | None = None,
          endpoint="/token") -> str:
    form = {"grant_type": "client_credentials", "scope": scope}
    if on_behalf_of:
        form["on_behalf_of"] = on_behalf_of
    if actors:
        form["actors"] = ",".join(actors)
    headers = {"Authorization": "Basic " + base64.b64encode(b"agent-app:s3cret").decode(),
               "Content-Type": "application/x-www-form-urlencoded"}
    if dpop_key:
        headers["DPoP"] = proof(dpop_key, "POST", auth.issuer + endpoint, "")
    req = urllib.request.Request(auth.issuer + endpoint, data=urllib.parse.urlencode(form).encode(), headers=headers)
    ctx = ssl.create_default_context(cafile=auth.ca_file)
    with urllib.request.urlopen(req, context=ctx) as r:
        return json.loads(r.read())["access_token"]


def claims(tok: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(tok.split(".")[1] + "=="))


class OAuthProxy:
    def __init__(self, d, port, upstream_port, principals, block):
        self.port = port
        self.origin = f"http://127.0.0.1:{port}"
        conf = d / "proxy.conf"
        conf.write_text(config_text(port, upstream_port, principals, str(d / "access.log"),
                                    block + "route /open/ { scope echo; effect allow; allow_bearer on; }\n"))
        self.proxy = Proxy(str(conf), port, d / "access.log")

    def send(self, headers: dict, path="/echo/x", method="GET"):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            c.request(method, path, headers=headers)
            r = c.getresponse()
            return outcome_from_response(r.status, r.getheaders(), r.read())
        finally:
            c.close()

    def dpop(self, tok: str, key: Key, path="/echo/x", method="GET") -> dict:
        return {"Authorization": "DPoP " + tok, "DPoP": proof(key, method, self.origin + path, tok)}

    def stop(self):
        self.proxy.stop()


@pytest.fixture(scope="module")
def oauth_proxy(tmp_path_factory, upstream, auth, ids):
    block = (f"oauth_issuer {auth.issuer} {{ ca {auth.ca_file}; allow_private_addresses on; refresh 2s; kid_cooldown 1s; "
             f"max_act_depth 3; introspection_endpoint {auth.issuer}/introspect; client_id mandate-rs; "
             "client_secret 'rs p@ss&word'; introspection_cache 1s; }\n")
    p = OAuthProxy(tmp_path_factory.mktemp("oauthproxy"), auth.proxy_port, upstream.port, {"Alice": ids.alice.did}, block)
    yield p
    p.stop()


def test_dpop_bound_access_token_is_forwarded(oauth_proxy, auth):
    key = Key.ed25519()
    tok = token(auth, on_behalf_of="alice@example.com", dpop_key=key)
    assert claims(tok)["cnf"]["jkt"] == key.thumbprint()
    up = assert_forwarded(oauth_proxy.send(oauth_proxy.dpop(tok, key)))
    assert up["mandate-principal"] == ["alice@example.com"]
    assert up["mandate-agent"] == ["agent-app"]  # no act: the client is the agent
    assert up["mandate-issuer"] == [auth.issuer]
    assert up["mandate-scope"] == ["echo"]
    assert "authorization" not in up and "dpop" not in up


def test_act_chain_names_the_current_agent(oauth_proxy, auth):
    key = Key.p256()
    tok = token(auth, on_behalf_of="alice@example.com", actors=["planner-agent", "payments-agent"], dpop_key=key)
    assert claims(tok)["act"] == {"sub": "payments-agent", "act": {"sub": "planner-agent"}}
    up = assert_forwarded(oauth_proxy.send(oauth_proxy.dpop(tok, key)))
    assert up["mandate-agent"] == ["payments-agent"]  # RFC 8693 §4.1: the outermost act
    assert up["mandate-chain"] == ["alice@example.com,planner-agent,payments-agent"]
    deep = token(auth, actors=["a", "b", "c", "d"], dpop_key=key)
    assert_refused(oauth_proxy.send(oauth_proxy.dpop(deep, key)), 401, "invalid_token", "nested deeper than 3")


def test_sender_constraint(oauth_proxy, auth):
    key = Key.ed25519()
    bound = token(auth, dpop_key=key)
    # The proof must come from the bound key, and the bound token never passes as Bearer.
    assert_refused(oauth_proxy.send(oauth_proxy.dpop(bound, Key.ed25519())), 401, "invalid_dpop_proof")
    assert_refused(oauth_proxy.send({"Authorization": "Bearer " + bound}), 401, "invalid_token", "DPoP-bound")
    # A plain Bearer token: only on a route that allows it.
    plain = token(auth)
    assert "cnf" not in claims(plain)
    assert_refused(oauth_proxy.send({"Authorization": "Bearer " + plain}), 401, "invalid_token", "sender-constrained")
    up = assert_forwarded(oauth_proxy.send({"Authorization": "Bearer " + plain}, "/open/x"))
    assert up["mandate-agent"] == ["agent-app"]
    # And a DPoP proof does not make an unbound token bound.
    assert_refused(oauth_proxy.send(oauth_proxy.dpop(plain, key)), 401, "invalid_token", "not DPoP-bound")


def test_claims_are_checked(oauth_proxy, auth):
    key = Key.ed25519()
    tok = token(auth, dpop_key=key)
    h, c, s = tok.split(".")
    # Any change to the claims breaks the signature.
    forged = json.loads(base64.urlsafe_b64decode(c + "=="))
    forged["sub"] = "mallory"
    bad = h + "." + b64u(json.dumps(forged).encode()) + "." + s
    assert_refused(oauth_proxy.send(oauth_proxy.dpop(bad, key)), 401, "invalid_token", "signature")
    # A token for another audience, or from an issuer not configured, is refused.
    other = auth.audience
    auth.audience = "https://somewhere-else.example"
    try:
        wrong_aud = token(auth, dpop_key=key)
    finally:
        auth.audience = other
    assert_refused(oauth_proxy.send(oauth_proxy.dpop(wrong_aud, key)), 401, "invalid_token", "aud does not include")
    stranger = dict(forged, iss="https://evil.example", sub=claims(tok)["sub"])
    bad_iss = h + "." + b64u(json.dumps(stranger).encode()) + "." + s
    assert_refused(oauth_proxy.send(oauth_proxy.dpop(bad_iss, key)), 401, "invalid_token", "not a configured issuer")
    # alg none, or a key in the header, are refused before any key lookup.
    none = b64u(b'{"alg":"none","typ":"at+jwt"}') + "." + c + "."
    assert oauth_proxy.send(oauth_proxy.dpop(none, key)).status == 401
    # An access token does not come with Agent-Delegation.
    h2 = oauth_proxy.dpop(tok, key)
    h2["Agent-Delegation"] = tok
    assert_refused(oauth_proxy.send(h2), 400, "invalid_request", "Agent-Delegation")


def test_key_rotation_and_unknown_kid_refetch_once_per_cooldown(oauth_proxy, auth):
    key = Key.ed25519()
    assert_forwarded(oauth_proxy.send(oauth_proxy.dpop(token(auth, dpop_key=key), key)))
    time.sleep(1.1)  # past kid_cooldown
    auth.rotate("k2")
    hits = auth.jwks_hits
    tokens = [token(auth, dpop_key=key) for _ in range(6)]
    assert all(json.loads(base64.urlsafe_b64decode(t.split(".")[0] + "=="))["kid"] == "k2" for t in tokens)
    for t in tokens:
        assert_forwarded(oauth_proxy.send(oauth_proxy.dpop(t, key)))
    assert auth.jwks_hits - hits == 1  # one refetch for the new kid, however many requests
    # An unknown kid within the cooldown is refused without a fetch.
    h, c, s = tokens[0].split(".")
    header = json.loads(base64.urlsafe_b64decode(h + "=="))
    header["kid"] = "nobody"
    ghost = b64u(json.dumps(header).encode()) + "." + c + "." + s
    hits = auth.jwks_hits
    for _ in range(5):
        assert_refused(oauth_proxy.send(oauth_proxy.dpop(ghost, key)), 401, "invalid_token", "kid is not in the issuer's JWKS")
    assert auth.jwks_hits - hits <= 1


def test_last_keys_serve_while_the_server_is_down(oauth_proxy, auth):
    key = Key.ed25519()
    tok = token(auth, dpop_key=key)
    assert_forwarded(oauth_proxy.send(oauth_proxy.dpop(tok, key)))
    auth.jwks_status = 500
    try:
        time.sleep(2.2)  # past refresh: the background fetch fails
        for _ in range(3):
            assert_forwarded(oauth_proxy.send(oauth_proxy.dpop(token(auth, dpop_key=key), key)))
            time.sleep(0.3)
    finally:
        auth.jwks_status = 200


def test_issuer_unreachable_at_start_fails_closed(tmp_path, upstream, ids):
    port = free_port()
    dead = free_port()
    block = f"oauth_issuer https://localhost:{dead} {{ allow_private_addresses on; timeout 1s; }}\n"
    p = OAuthProxy(tmp_path, port, upstream.port, {"Alice": ids.alice.did}, block)
    try:
        h, c = b64u(b'{"alg":"ES256","typ":"at+jwt","kid":"k1"}'), b64u(json.dumps(
            {"iss": f"https://localhost:{dead}", "aud": p.origin, "sub": "a", "client_id": "c",
             "exp": int(time.time()) + 60, "iat": int(time.time()), "jti": "j1"}).encode())
        tok = h + "." + c + "." + b64u(bytes(64))
        o = p.send({"Authorization": "Bearer " + tok}, "/open/x")
        assert_refused(o, 503, "temporarily_unavailable", "keys are not available")
        assert o.response_headers.get("retry-after") == ["1"]
    finally:
        p.stop()


# --- opaque tokens through RFC 7662 introspection -----------------------------------------------


def test_opaque_token_is_introspected_and_cached(oauth_proxy, auth):
    key = Key.ed25519()
    tok = token(auth, endpoint="/token-opaque", on_behalf_of="carol@example.com", dpop_key=key)
    assert tok.count(".") != 2  # opaque
    before = auth.introspections
    for i in range(4):
        up = assert_forwarded(oauth_proxy.send(oauth_proxy.dpop(tok, key, f"/echo/{i}"), f"/echo/{i}"))
        assert up["mandate-principal"] == ["carol@example.com"]
        assert up["mandate-issuer"] == [auth.issuer]
    assert auth.introspections - before == 1  # cached (introspection_cache 1 s)
    # DPoP-bound through introspection's cnf.jkt: another key's proof is refused.
    assert_refused(oauth_proxy.send(oauth_proxy.dpop(tok, Key.ed25519())), 401, "invalid_dpop_proof")


def test_revoked_opaque_token_stops_working_after_the_cache(oauth_proxy, auth):
    tok = token(auth, endpoint="/token-opaque")
    assert_forwarded(oauth_proxy.send({"Authorization": "Bearer " + tok}, "/open/x"))
    del auth.opaque[tok]  # revoked at the authorization server
    time.sleep(1.2)
    assert_refused(oauth_proxy.send({"Authorization": "Bearer " + tok}, "/open/x"), 401, "invalid_token", "not active")
    unknown = "no-such-token-" + b64u(bytes(8))
    assert_refused(oauth_proxy.send({"Authorization": "Bearer " + unknown}, "/open/x"), 401, "invalid_token", "not active")


def test_introspection_failure_fails_closed(tmp_path, upstream, auth, ids):
    port = free_port()
    block = (f"oauth_issuer {auth.issuer} {{ ca {auth.ca_file}; allow_private_addresses on; "
             f"introspection_endpoint {auth.issuer}/introspect; client_id mandate-rs; client_secret wrong; }}\n")
    p = OAuthProxy(tmp_path, port, upstream.port, {"Alice": ids.alice.did}, block)
    try:
        tok = token(auth, endpoint="/token-opaque")
        o = p.send({"Authorization": "Bearer " + tok}, "/open/x")
        assert_refused(o, 503, "temporarily_unavailable", "introspection failed (HTTP 401)")
    finally:
        p.stop()


def test_rs256_issuer(tmp_path, upstream, ids):
    """Most authorization servers sign with RS256 (RFC 9068 §2.1): their keys are accepted from
    the JWKS, pinned to RS256, and only there (delegations and proofs stay EdDSA/ES256)."""
    ca = make_ca("rs256 AS CA")
    (tmp_path / "ca.pem").write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    cert, key = issue(ca, "localhost", server=True).write(tmp_path, "as")
    port = free_port()
    a = AuthServer(cert, key, audience=f"http://127.0.0.1:{port}", alg="RS256")
    a.ca_file = str(tmp_path / "ca.pem")
    try:
        block = f"oauth_issuer {a.issuer} {{ ca {a.ca_file}; allow_private_addresses on; }}\n"
        p = OAuthProxy(tmp_path, port, upstream.port, {"Alice": ids.alice.did}, block)
        try:
            dpop_key = Key.ed25519()
            tok = token(a, on_behalf_of="dave@example.com", dpop_key=dpop_key)
            assert json.loads(base64.urlsafe_b64decode(tok.split(".")[0] + "=="))["alg"] == "RS256"
            up = assert_forwarded(p.send(p.dpop(tok, dpop_key)))
            assert up["mandate-principal"] == ["dave@example.com"]
            # The same token relabelled ES256 does not pass: the key has one algorithm.
            h, c, s = tok.split(".")
            relabelled = b64u(json.dumps(dict(json.loads(base64.urlsafe_b64decode(h + "==")), alg="ES256")).encode())
            assert_refused(p.send(p.dpop(relabelled + "." + c + "." + s, dpop_key)), 401, "invalid_token")
        finally:
            p.stop()
    finally:
        a.stop()


def test_metadata_names_the_authorization_server(oauth_proxy, auth):
    c = http.client.HTTPConnection("127.0.0.1", oauth_proxy.port, timeout=10)
    c.request("GET", "/.well-known/oauth-protected-resource")
    doc = json.loads(c.getresponse().read())
    c.close()
    assert doc["authorization_servers"] == [auth.issuer]
    assert doc["dpop_bound_access_tokens_required"] is False  # a route accepts plain Bearer
    # With OAuth configured Bearer is acceptable, so a refusal challenges both schemes.
    o = oauth_proxy.send({})
    assert [v.split(" ")[0] for v in o.response_headers["www-authenticate"]] == ["DPoP", "Bearer"]
