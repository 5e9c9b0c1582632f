"""Forged and malformed credentials, each refused with the status and code of docs/credentials.md §7.

Every test runs twice: offline through `mandate explain` and through the running proxy.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest

from harness import assert_forwarded, assert_refused, challenge_params
from mandate_creds import (Chain, Key, Party, b64u, b64u_decode, chain, compact_json, delegation, jws, proof,
                           sha256_b64u)


def send(t, c: Chain, method="GET", path="/echo/x", *, htu=None, headers=None, **proof_args):
    h = c.headers(method, htu or t.origin + path.split("?")[0], **proof_args)
    h.update(headers or {})
    return t.send(method, path, {k: v for k, v in h.items() if v is not None})


@pytest.fixture
def agent(ids):
    return ids.agent("EdDSA")


@pytest.fixture
def two(ids):
    """alice → A (ES256) → B (EdDSA)."""
    a, b = ids.agent("ES256"), ids.agent("EdDSA")
    return a, b, chain(ids.alice, [a, b], ["echo invoices:read", "echo"])


def flip(segment: str, at: int = 5) -> str:
    c = segment[at]
    return segment[:at] + ("A" if c != "A" else "B") + segment[at + 1:]


def replace_part(token: str, index: int, value: str) -> str:
    parts = token.split(".")
    parts[index] = value
    return ".".join(parts)


# --- the baseline, so every refusal below differs from an accepted request in one thing ------

def test_baseline_two_links_forwarded(transport, two):
    assert_forwarded(send(transport, two[2]))


# --- delegation tokens: 401 invalid_token ------------------------------------------------------

def test_rejects_tampered_signature(transport, two):
    a, b, c = two
    h, p, s = c.tokens[1].split(".")
    c.tokens[1] = f"{h}.{p}.{flip(s, 10)}"
    assert_refused(send(transport, c), 401, "invalid_token", "signature does not verify")


def test_rejects_tampered_claims(transport, ids, two):
    a, b, c = two
    h, p, s = c.tokens[1].split(".")
    claims = b64u_decode(p).replace(b'"scope":"echo"', b'"scope":"echo invoices:read"')
    c.tokens[1] = f"{h}.{b64u(claims)}.{s}"
    assert_refused(send(transport, c), 401, "invalid_token", "signature does not verify")


def test_rejects_link_signed_by_wrong_key(transport, ids, agent):
    # Claims iss = Alice, but Mallory signs.
    tok = delegation(ids.alice, agent.did, agent.key.thumbprint(), "echo", signer=ids.mallory.key)
    assert_refused(send(transport, Chain([tok], agent.key)), 401, "invalid_token", "signature does not verify")


def test_rejects_signing_key_not_delegated_by_parent(transport, ids):
    # Link 1 binds A's sub to another key's thumbprint; A then signs link 2 with its own key.
    a, b, other = ids.agent("ES256"), ids.agent(), Key.p256()
    t1 = delegation(ids.alice, a.did, other.thumbprint(), "echo")
    t2 = delegation(a, b.did, b.key.thumbprint(), "echo", parent=t1)
    assert_refused(send(transport, Chain([t1, t2], b.key)), 401, "invalid_token", "cnf.jkt")


def test_rejects_issuer_not_parent_subject(transport, ids):
    a, b, x = ids.agent(), ids.agent(), ids.agent()
    t1 = delegation(ids.alice, a.did, a.key.thumbprint(), "echo")
    t2 = delegation(x, b.did, b.key.thumbprint(), "echo", parent=t1)
    assert_refused(send(transport, Chain([t1, t2], b.key)), 401, "invalid_token", "iss is not the parent's sub")


def test_rejects_scope_widening(transport, ids):
    a, b = ids.agent("ES256"), ids.agent()
    c = chain(ids.alice, [a, b], ["echo", "echo payments:write"])
    assert_refused(send(transport, c), 401, "invalid_token", "wider than the parent")


def test_rejects_broken_prf(transport, ids):
    a, b = ids.agent(), ids.agent()
    t1 = delegation(ids.alice, a.did, a.key.thumbprint(), "echo")
    t2 = delegation(a, b.did, b.key.thumbprint(), "echo", prf=sha256_b64u(t1 + "x"))
    assert_refused(send(transport, Chain([t1, t2], b.key)), 401, "invalid_token", "prf is not the hash")


def test_rejects_missing_prf_below_root(transport, ids):
    a, b = ids.agent(), ids.agent()
    t1 = delegation(ids.alice, a.did, a.key.thumbprint(), "echo")
    t2 = delegation(a, b.did, b.key.thumbprint(), "echo")
    assert_refused(send(transport, Chain([t1, t2], b.key)), 401, "invalid_token", "prf is required")


def test_rejects_prf_on_root(transport, ids, agent):
    tok = delegation(ids.alice, agent.did, agent.key.thumbprint(), "echo", prf=sha256_b64u("x"))
    assert_refused(send(transport, Chain([tok], agent.key)), 401, "invalid_token", "root must not carry prf")


def test_rejects_incomplete_chain(transport, two):
    a, b, c = two
    c.tokens = c.tokens[1:]  # the leaf without Agent-Delegation
    assert_refused(send(transport, c), 401, "invalid_token")


def test_rejects_chain_out_of_order(transport, ids):
    a, b, d = ids.agent(), ids.agent(), ids.agent()
    c = chain(ids.alice, [a, b, d], ["echo"] * 3)
    c.tokens[0], c.tokens[1] = c.tokens[1], c.tokens[0]
    assert_refused(send(transport, c), 401, "invalid_token")


def test_rejects_unenrolled_principal(transport, ids, agent):
    c = chain(ids.mallory, [agent], ["echo"])
    assert_refused(send(transport, c), 401, "invalid_token", "not an enrolled principal")


def test_rejects_expired(transport, ids, agent):
    now = int(time.time())
    tok = delegation(ids.alice, agent.did, agent.key.thumbprint(), "echo", now=now - 7200, ttl=3600)
    assert_refused(send(transport, Chain([tok], agent.key)), 401, "invalid_token", "expired")


def test_accepts_expiry_within_clock_skew(transport, ids, agent):
    now = int(time.time())
    tok = delegation(ids.alice, agent.did, agent.key.thumbprint(), "echo", now=now - 600, ttl=590)
    assert_forwarded(send(transport, Chain([tok], agent.key)))


def test_rejects_not_yet_valid(transport, ids, agent):
    now = int(time.time())
    tok = delegation(ids.alice, agent.did, agent.key.thumbprint(), "echo", nbf=now + 600)
    assert_refused(send(transport, Chain([tok], agent.key)), 401, "invalid_token", "nbf")


def test_rejects_issued_in_future(transport, ids, agent):
    now = int(time.time())
    tok = delegation(ids.alice, agent.did, agent.key.thumbprint(), "echo", now=now + 600)
    assert_refused(send(transport, Chain([tok], agent.key)), 401, "invalid_token", "iat")


def test_rejects_lifetime_beyond_24h(transport, ids, agent):
    tok = delegation(ids.alice, agent.did, agent.key.thumbprint(), "echo", ttl=25 * 3600)
    assert_refused(send(transport, Chain([tok], agent.key)), 401, "invalid_token", "maximum delegation lifetime")


def test_rejects_child_outliving_parent(transport, ids):
    a, b = ids.agent(), ids.agent()
    t1 = delegation(ids.alice, a.did, a.key.thumbprint(), "echo", ttl=600)
    t2 = delegation(a, b.did, b.key.thumbprint(), "echo", ttl=1200, parent=t1)
    assert_refused(send(transport, Chain([t1, t2], b.key)), 401, "invalid_token", "outlives the parent")


@pytest.mark.parametrize("value", ["1767225600", 1767225600.5, -1, True])
def test_rejects_non_integer_numeric_date(transport, ids, agent, value):
    tok = delegation(ids.alice, agent.did, agent.key.thumbprint(), "echo", iat=value)
    assert_refused(send(transport, Chain([tok], agent.key)), 401, "invalid_token")


def test_rejects_max_depth_exceeded(transport, ids):
    a, b = ids.agent(), ids.agent()
    t1 = delegation(ids.alice, a.did, a.key.thumbprint(), "echo", max_depth=0)
    t2 = delegation(a, b.did, b.key.thumbprint(), "echo", parent=t1)
    assert_refused(send(transport, Chain([t1, t2], b.key)), 401, "invalid_token", "max_depth")


def test_accepts_within_max_depth(transport, ids):
    a, b = ids.agent(), ids.agent()
    t1 = delegation(ids.alice, a.did, a.key.thumbprint(), "echo", max_depth=1)
    t2 = delegation(a, b.did, b.key.thumbprint(), "echo", parent=t1)
    assert_forwarded(send(transport, Chain([t1, t2], b.key)))


def test_rejects_chain_longer_than_five(transport, ids):
    agents = [ids.agent() for _ in range(6)]
    assert_refused(send(transport, chain(ids.alice, agents, ["echo"] * 6)), 401, "invalid_token", "longer than 5")


def test_rejects_foreign_audience(transport, ids, agent):
    tok = delegation(ids.alice, agent.did, agent.key.thumbprint(), "echo", aud=["https://elsewhere.example"])
    assert_refused(send(transport, Chain([tok], agent.key)), 401, "invalid_token", "aud")


def test_accepts_own_audience(transport, ids, agent, origin):
    tok = delegation(ids.alice, agent.did, agent.key.thumbprint(), "echo", aud=["https://elsewhere.example", origin])
    assert_forwarded(send(transport, Chain([tok], agent.key)))


@pytest.mark.parametrize("header", [{"typ": "JWT"}, {"typ": None}, {"kid": None}, {"crit": ["exp"]},
                                    {"jwk": {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}}, {"jku": "https://x"}])
def test_rejects_bad_delegation_header(transport, ids, agent, header):
    tok = delegation(ids.alice, agent.did, agent.key.thumbprint(), "echo", header_extra=header)
    assert_refused(send(transport, Chain([tok], agent.key)), 401, "invalid_token")


def test_rejects_kid_not_issuer_method(transport, ids, agent):
    tok = delegation(ids.alice, agent.did, agent.key.thumbprint(), "echo", header_extra={"kid": ids.alice.did + "#0"})
    assert_refused(send(transport, Chain([tok], agent.key)), 401, "invalid_token", "kid")


@pytest.mark.parametrize("claim", ["iss", "sub", "cnf", "scope", "iat", "exp", "jti"])
def test_rejects_missing_required_claim(transport, ids, agent, claim):
    tok = delegation(ids.alice, agent.did, agent.key.thumbprint(), "echo", drop=(claim,))
    assert_refused(send(transport, Chain([tok], agent.key)), 401, "invalid_token")


def test_rejects_alg_none_delegation(transport, ids, agent):
    claims = {"iss": ids.alice.did, "sub": agent.did, "cnf": {"jkt": agent.key.thumbprint()}, "scope": "echo",
              "iat": int(time.time()), "exp": int(time.time()) + 600, "jti": "none-1"}
    tok = jws({"alg": "none", "typ": "delegation+jwt", "kid": ids.alice.did + "#" + ids.alice.did[8:]}, claims,
              None, signature=b"")
    assert_refused(send(transport, Chain([tok], agent.key)), 401, "invalid_token", "not allowed")


def test_rejects_hs256_delegation(transport, ids, agent):
    # The classic confusion: HMAC keyed with the issuer's public key.
    claims = {"iss": ids.alice.did, "sub": agent.did, "cnf": {"jkt": agent.key.thumbprint()}, "scope": "echo",
              "iat": int(time.time()), "exp": int(time.time()) + 600, "jti": "hs-1"}
    header = {"alg": "HS256", "typ": "delegation+jwt", "kid": ids.alice.did + "#" + ids.alice.did[8:]}
    signing_input = (b64u(compact_json(header)) + "." + b64u(compact_json(claims))).encode()
    mac = hmac.new(b64u_decode(ids.alice.key.public_jwk()["x"]), signing_input, hashlib.sha256).digest()
    tok = jws(header, claims, None, signature=mac)
    assert_refused(send(transport, Chain([tok], agent.key)), 401, "invalid_token", "not allowed")


def test_rejects_der_encoded_es256(transport, ids):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    a = ids.agent()
    good = delegation(ids.carol, a.did, a.key.thumbprint(), "echo")
    h, p, _ = good.split(".")
    der = ids.carol.key.private.sign(f"{h}.{p}".encode(), ec.ECDSA(hashes.SHA256()))
    assert_refused(send(transport, Chain([f"{h}.{p}.{b64u(der)}"], a.key)), 401, "invalid_token")


def test_rejects_duplicate_member_in_delegation(transport, ids, agent):
    good = delegation(ids.alice, agent.did, agent.key.thumbprint(), "echo")
    h, p, _ = good.split(".")
    claims = b64u_decode(p)[:-1] + b',"scope":"echo invoices:read"}'
    tok = jws(b64u_decode(h), claims, ids.alice.key)
    assert_refused(send(transport, Chain([tok], agent.key)), 401, "invalid_token", "duplicate member")


def test_rejects_padded_base64url(transport, ids, agent):
    tok = delegation(ids.alice, agent.did, agent.key.thumbprint(), "echo")
    h, p, s = tok.split(".")
    assert_refused(send(transport, Chain([f"{h}.{p}.{s}=="], agent.key)), 401, "invalid_token")


# --- the Authorization header ------------------------------------------------------------------

def test_rejects_bearer_scheme(transport, two):
    h = two[2].headers("GET", transport.origin + "/echo/x")
    h["Authorization"] = "Bearer " + two[2].leaf
    assert_refused(transport.send("GET", "/echo/x", h), 401, "invalid_token", "Bearer")


def test_accepts_lower_case_scheme(transport, two):
    h = two[2].headers("GET", transport.origin + "/echo/x")
    h["Authorization"] = "dpop " + two[2].leaf
    assert_forwarded(transport.send("GET", "/echo/x", h))


def test_rejects_missing_authorization(transport, two):
    h = two[2].headers("GET", transport.origin + "/echo/x")
    del h["Authorization"]
    o = transport.send("GET", "/echo/x", h)
    assert_refused(o, 401, "missing_credential")
    if transport.name == "http":  # RFC 6750 §3.1: no error code when no credential was sent; RFC 9728 §5.1
        assert o.www_authenticate == (f'DPoP algs="EdDSA ES256", resource_metadata="{transport.origin}'
                                      '/.well-known/oauth-protected-resource"'), o.www_authenticate


def test_rejects_missing_dpop(transport, two):
    h = two[2].headers("GET", transport.origin + "/echo/x")
    del h["DPoP"]
    assert_refused(transport.send("GET", "/echo/x", h), 401, "invalid_dpop_proof", "missing DPoP")


def test_rejects_empty_agent_delegation_element(transport, two):
    h = two[2].headers("GET", transport.origin + "/echo/x")
    h["Agent-Delegation"] += ", "
    assert_refused(transport.send("GET", "/echo/x", h), 401, "invalid_token")


# --- DPoP proofs: 401 invalid_dpop_proof --------------------------------------------------------

def test_rejects_wrong_htm(transport, two):
    assert_refused(send(transport, two[2], htm="POST"), 401, "invalid_dpop_proof", "htm")


def test_rejects_upstream_url_as_htu(transport, two, upstream):
    o = send(transport, two[2], htu=f"http://127.0.0.1:{upstream.port}/echo/x")
    assert_refused(o, 401, "invalid_dpop_proof", "htu")


def test_rejects_other_path_as_htu(transport, two):
    assert_refused(send(transport, two[2], htu=transport.origin + "/echo/y"), 401, "invalid_dpop_proof", "htu")


@pytest.mark.parametrize("spelling", [
    "{origin}/echo/x?ignored=1#frag",              # query and fragment are not compared
    "HTTP://127.0.0.1:{port}/echo/x",              # scheme and host case
    "{origin}/echo/%78",                           # %78 is 'x', unreserved
    "{origin}/echo/./y/../x",                      # dot segments
])
def test_accepts_normalised_htu(transport, two, origin, spelling):
    htu = spelling.format(origin=origin, port=origin.rsplit(":", 1)[1])
    assert_forwarded(send(transport, two[2], htu=htu))


def test_rejects_stale_iat(transport, two):
    assert_refused(send(transport, two[2], now=int(time.time()) - 120), 401, "invalid_dpop_proof", "too old")


def test_rejects_future_iat(transport, two):
    assert_refused(send(transport, two[2], now=int(time.time()) + 60), 401, "invalid_dpop_proof", "future")


def test_rejects_ath_mismatch(transport, two):
    assert_refused(send(transport, two[2], ath=sha256_b64u(two[2].tokens[0])), 401, "invalid_dpop_proof", "ath")


def test_rejects_missing_ath(transport, two):
    assert_refused(send(transport, two[2], ath=None), 401, "invalid_dpop_proof", "ath")


def test_rejects_proof_alg_none(transport, two, origin):
    c = two[2]
    claims = {"jti": "n1", "htm": "GET", "htu": origin + "/echo/x", "iat": int(time.time()),
              "ath": sha256_b64u(c.leaf)}
    p = jws({"typ": "dpop+jwt", "alg": "none", "jwk": c.holder.public_jwk()}, claims, None, signature=b"")
    h = c.headers("GET", origin + "/echo/x")
    h["DPoP"] = p
    assert_refused(transport.send("GET", "/echo/x", h), 401, "invalid_dpop_proof", "not allowed")


def test_rejects_proof_hs256(transport, two, origin):
    c = two[2]
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": c.holder.public_jwk()}
    claims = {"jti": "h1", "htm": "GET", "htu": origin + "/echo/x", "iat": int(time.time()),
              "ath": sha256_b64u(c.leaf)}
    si = (b64u(compact_json(header)) + "." + b64u(compact_json(claims))).encode()
    p = jws(header, claims, None, signature=hmac.new(b"secret", si, hashlib.sha256).digest())
    h = c.headers("GET", origin + "/echo/x")
    h["DPoP"] = p
    assert_refused(transport.send("GET", "/echo/x", h), 401, "invalid_dpop_proof", "not allowed")


def test_rejects_duplicate_member_in_proof_header(transport, two, origin):
    c = two[2]
    jwk = compact_json(c.holder.public_jwk())
    header = b'{"typ":"dpop+jwt","alg":"EdDSA","jwk":' + jwk + b',"typ":"dpop+jwt"}'
    claims = {"jti": b64u(b"dup-member"), "htm": "GET", "htu": origin + "/echo/x", "iat": int(time.time()),
              "ath": sha256_b64u(c.leaf)}
    h = c.headers("GET", origin + "/echo/x")
    h["DPoP"] = jws(header, claims, c.holder)
    assert_refused(transport.send("GET", "/echo/x", h), 401, "invalid_dpop_proof", "duplicate member")


def test_rejects_private_key_in_proof_jwk(transport, two):
    c = two[2]
    o = send(transport, c, header_extra={"jwk": c.holder.private_jwk()})
    assert_refused(o, 401, "invalid_dpop_proof", "private")


def test_rejects_proof_alg_not_matching_jwk(transport, two):
    assert_refused(send(transport, two[2], header_extra={"alg": "ES256"}), 401, "invalid_dpop_proof")


@pytest.mark.parametrize("typ", ["JWT", "delegation+jwt", None])
def test_rejects_proof_typ(transport, two, typ):
    assert_refused(send(transport, two[2], header_extra={"typ": typ}), 401, "invalid_dpop_proof", "typ")


def test_rejects_proof_key_not_bound(transport, two, origin):
    c = two[2]
    other = Key.ed25519()
    h = c.headers("GET", origin + "/echo/x")
    h["DPoP"] = proof(other, "GET", origin + "/echo/x", c.leaf)
    assert_refused(transport.send("GET", "/echo/x", h), 401, "invalid_dpop_proof", "cnf.jkt")


def test_rejects_proof_signature_by_other_key(transport, two, origin):
    # The header names the bound key, but another key signed.
    c = two[2]
    p = proof(Key.ed25519(), "GET", origin + "/echo/x", c.leaf, header_extra={"jwk": c.holder.public_jwk()})
    h = c.headers("GET", origin + "/echo/x")
    h["DPoP"] = p
    assert_refused(transport.send("GET", "/echo/x", h), 401, "invalid_dpop_proof", "signature")


def test_rejects_proof_by_parent_agent(transport, two, origin):
    # Agent A holds link 1 but the leaf is bound to B: A cannot use B's leaf.
    a, b, c = two
    h = c.headers("GET", origin + "/echo/x")
    h["DPoP"] = proof(a.key, "GET", origin + "/echo/x", c.leaf)
    assert_refused(transport.send("GET", "/echo/x", h), 401, "invalid_dpop_proof", "cnf.jkt")


# --- policy: 403 ----------------------------------------------------------------------------------

def test_rejects_insufficient_scope(transport, ids, agent):
    c = chain(ids.alice, [agent], ["echo"])
    o = send(transport, c, path="/invoices/1")
    assert_refused(o, 403, "insufficient_scope")
    if o.transport == "http":
        assert challenge_params(o.www_authenticate)["scope"] == "invoices:read"


def test_rejects_no_route(transport, ids, agent):
    c = chain(ids.alice, [agent], ["echo invoices:read"])
    o = send(transport, c, path="/nowhere")
    assert_refused(o, 403, "access_denied", "no route")
    assert o.www_authenticate is None


def test_rejects_method_without_route(transport, ids, agent):
    c = chain(ids.alice, [agent], ["invoices:read"])
    assert_refused(send(transport, c, method="DELETE", path="/invoices/1"), 403, "access_denied")


def test_rejects_deny_route(transport, ids, agent):
    c = chain(ids.alice, [agent], ["echo"])
    assert_refused(send(transport, c, path="/admin/users"), 403, "access_denied")


def test_approve_route_needs_approval(transport, ids, agent):
    c = chain(ids.alice, [agent], ["payments:write"])
    o = send(transport, c, method="POST", path="/payments")
    assert_refused(o, 403, "approval_required")
    assert o.www_authenticate is None


def test_rejects_encoded_slash_offline(explain, two):
    assert_refused(send(explain, two[2], path="/echo/a%2Fb"), 400, "invalid_request", "encoded slash")


def test_configured_audience_replaces_public_origin(ids, agent, upstream, tmp_path):
    from harness import Explain, config_text
    conf = tmp_path / "aud.conf"
    conf.write_text(config_text(8080, upstream.port, {"Alice": ids.alice.did}, "off", "audience urn:example:api;\n"))
    ex = Explain(str(conf), "http://127.0.0.1:8080")
    ok = delegation(ids.alice, agent.did, agent.key.thumbprint(), "echo", aud="urn:example:api")
    assert_forwarded(send(ex, Chain([ok], agent.key)))
    origin = delegation(ids.alice, agent.did, agent.key.thumbprint(), "echo", aud="http://127.0.0.1:8080")
    assert_refused(send(ex, Chain([origin], agent.key)), 401, "invalid_token", "aud")
