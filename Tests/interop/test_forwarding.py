"""Accepted requests: what the upstream receives (docs/credentials.md §8).

Through `mandate explain` the upstream view is the forward plan it prints; through the proxy it is
what the Python upstream echoes.
"""

from __future__ import annotations

import json
import time

import pytest
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws

from harness import assert_forwarded, assert_refused
from mandate_creds import Chain, Key, Party, b64u, delegation, kid_for, sha256_b64u

CREDENTIAL_HEADERS = ["authorization", "dpop", "agent-delegation"]


def send(t, c: Chain, method="GET", path="/echo/x", headers=None):
    h = c.headers(method, t.origin + path.split("?")[0])
    h.update(headers or {})
    return t.send(method, path, h)


def check_identity(up: dict, principal: Party, agents: list[Party], scope: str):
    assert up["mandate-principal"] == [principal.did]
    assert up["mandate-agent"] == [agents[-1].did]
    assert up["mandate-chain"] == [",".join([principal.did] + [a.did for a in agents])]
    assert up["mandate-scope"] == [scope]
    assert len(up["mandate-request-id"]) == 1 and up["mandate-request-id"][0]
    for name in CREDENTIAL_HEADERS:
        assert name not in up, f"{name} reached the upstream"


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_forwards_single_link_agent(transport, ids, alg):
    agent = ids.agent(alg)
    tok = delegation(ids.alice, agent.did, agent.key.thumbprint(), "echo invoices:read")
    up = assert_forwarded(send(transport, Chain([tok], agent.key)))
    check_identity(up, ids.alice, [agent], "echo invoices:read")
    assert "agent-delegation" not in up


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_forwards_two_links_to_agent(transport, ids, alg):
    a, b = ids.agent("ES256"), ids.agent(alg)
    t1 = delegation(ids.alice, a.did, a.key.thumbprint(), "echo invoices:read", max_depth=1)
    t2 = delegation(a, b.did, b.key.thumbprint(), "echo", parent=t1)
    up = assert_forwarded(send(transport, Chain([t1, t2], b.key)))
    check_identity(up, ids.alice, [a, b], "echo")


def test_forwards_three_links_with_did_jwk(transport, ids):
    a, b, c = ids.agent("ES256"), ids.agent("EdDSA", "jwk"), ids.agent("ES256", "jwk")
    t1 = delegation(ids.carol, a.did, a.key.thumbprint(), "echo invoices:read files:write")
    t2 = delegation(a, b.did, b.key.thumbprint(), "echo invoices:read", parent=t1)
    t3 = delegation(b, c.did, c.key.thumbprint(), "echo", parent=t2)
    up = assert_forwarded(send(transport, Chain([t1, t2, t3], c.key)))
    check_identity(up, ids.carol, [a, b, c], "echo")


def test_forwards_chain_of_five(transport, ids):
    agents = [ids.agent("ES256" if i % 2 else "EdDSA") for i in range(5)]
    tokens, issuer = [], ids.alice
    for a in agents:
        tokens.append(delegation(issuer, a.did, a.key.thumbprint(), "echo", parent=tokens[-1] if tokens else None))
        issuer = a
    up = assert_forwarded(send(transport, Chain(tokens, agents[-1].key)))
    check_identity(up, ids.alice, agents, "echo")


def test_forwards_query_unchanged(transport, ids):
    agent = ids.agent()
    tok = delegation(ids.alice, agent.did, agent.key.thumbprint(), "echo")
    o = send(transport, Chain([tok], agent.key), path="/echo/x?a=1&b=%2F")
    assert_forwarded(o)
    if o.transport == "http":
        assert o.body["path"] == "/echo/x?a=1&b=%2F"
    else:
        assert o.text.startswith("forward /echo/x?a=1&b=%2F\n")


@pytest.mark.parametrize("name", ["Mandate-Principal", "Mandate-Agent", "Mandate-Scope", "mandate-chain",
                                  "Mandate-Request-Id", "mandate_principal", "Mandate_Agent"])
def test_client_identity_headers_not_forwarded(transport, ids, name):
    agent = ids.agent()
    tok = delegation(ids.alice, agent.did, agent.key.thumbprint(), "echo")
    o = send(transport, Chain([tok], agent.key), headers={name: "did:key:evil"})
    if o.status == 400:  # a server may refuse the name outright
        assert_refused(o, 400, "invalid_request")
        return
    up = assert_forwarded(o)
    assert not any("did:key:evil" in v for vs in up.values() for v in vs), up
    check_identity(up, ids.alice, [agent], "echo")


def test_forwards_chain_minted_by_jwcrypto(transport, ids, origin):
    """A second, independent JOSE implementation mints the chain and the proof."""
    a = jwcrypto_jwk.JWK.generate(kty="EC", crv="P-256")
    b = jwcrypto_jwk.JWK.generate(kty="OKP", crv="Ed25519")

    def did_jwk(k):
        return "did:jwk:" + b64u(json.dumps(k.export_public(as_dict=True), separators=(",", ":")).encode())

    def sign(k, header, claims):
        s = jwcrypto_jws.JWS(json.dumps(claims).encode())
        s.add_signature(k, None, json.dumps(header))
        return s.serialize(compact=True)

    now = int(time.time())
    a_did, b_did = did_jwk(a), did_jwk(b)
    t1 = delegation(ids.alice, a_did, a.thumbprint(), "echo")
    t2 = sign(a, {"alg": "ES256", "typ": "delegation+jwt", "kid": kid_for(a_did)},
              {"iss": a_did, "sub": b_did, "cnf": {"jkt": b.thumbprint()}, "scope": "echo", "iat": now,
               "exp": now + 300, "jti": "jwcrypto-1", "prf": sha256_b64u(t1)})
    dpop = sign(b, {"typ": "dpop+jwt", "alg": "EdDSA", "jwk": b.export_public(as_dict=True)},
                {"jti": b64u(now.to_bytes(8, "big")), "htm": "GET", "htu": transport.origin + "/echo/j", "iat": now,
                 "ath": sha256_b64u(t2)})
    o = transport.send("GET", "/echo/j", {"Authorization": "DPoP " + t2, "DPoP": dpop, "Agent-Delegation": t1})
    up = assert_forwarded(o)
    assert up["mandate-chain"] == [f"{ids.alice.did},{a_did},{b_did}"]


@pytest.mark.parametrize("sub", ["did:key:z6Mkx\r\nMandate-Principal: did:key:zEvil", "did:key:z6Mkx\nX-Injected: 1",
                                 "did:key:zA,did:key:zB"])
def test_rejects_leaf_sub_that_is_not_a_did(transport, ids, sub):
    # A leaf sub goes into Mandate-Agent and Mandate-Chain: CR LF or commas there would forge identity.
    # Agent A, legitimately delegated by Alice, names a "delegate" of its own choosing.
    a, holder = ids.agent(), Key.ed25519()
    t1 = delegation(ids.alice, a.did, a.key.thumbprint(), "echo")
    t2 = delegation(a, sub, holder.thumbprint(), "echo", parent=t1)
    assert_refused(send(transport, Chain([t1, t2], holder)), 401, "invalid_token")


def test_environment_proxy_variables_do_not_divert_the_upstream(tmp_path, ids, upstream):
    """The configured upstream is where requests go: http_proxy and friends in the proxy's
    environment (pointing at a port where nothing listens) are not libcurl's to follow."""
    from harness import Proxy, config_text, free_port
    dead = f"http://127.0.0.1:{free_port()}"
    port = free_port()
    conf = tmp_path / "proxy.conf"
    conf.write_text(config_text(port, upstream.port, {"Alice": ids.alice.did}, "off"))
    env = {name: dead for name in ["http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]}
    env.update(no_proxy="", NO_PROXY="")
    p = Proxy(str(conf), port, tmp_path / "access.log", env=env)
    try:
        agent = ids.agent("EdDSA")
        c = Chain([delegation(ids.alice, agent.did, agent.key.thumbprint(), "echo")], agent.key)
        up = assert_forwarded(send(p, c))
        check_identity(up, ids.alice, [agent], "echo")
    finally:
        p.stop()
