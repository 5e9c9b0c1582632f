"""RFC 9421 HTTP Message Signatures as the proof of possession, signed by the Python
`http-message-signatures` package (an independent implementation) and checked by the real
binary; Content-Digest (RFC 9530) checked against the body as it streams through."""

from __future__ import annotations

import datetime
import hashlib
import http.client
import os

import pytest
from http_message_signatures import HTTPMessageSigner, HTTPSignatureKeyResolver, algorithms

from conftest import OFFLINE
from harness import assert_forwarded, assert_refused, outcome_from_response
from mandate_creds import Key, Party, b64u, chain, kid_for

pytestmark = pytest.mark.skipif(OFFLINE, reason="MANDATE_INTEROP_OFFLINE=1")


class Message:
    """What the library signs: method, url, headers."""

    def __init__(self, method: str, url: str, headers: dict[str, str]):
        self.method, self.url, self.headers = method, url, dict(headers)


class OneKey(HTTPSignatureKeyResolver):
    def __init__(self, key: Key):
        self.key = key

    def resolve_private_key(self, key_id):
        return self.key.private

    def resolve_public_key(self, key_id):
        return self.key.private.public_key()


def signed(proxy, c, method: str, path: str, *, body: bytes | None = None, keyid: str | None = None,
           components=("@method", "@authority", "@path", "authorization"), nonce: str | None = None,
           created: datetime.datetime | None = None, expires: datetime.datetime | None = None) -> dict[str, str]:
    alg = algorithms.ED25519 if c.holder.alg == "EdDSA" else algorithms.ECDSA_P256_SHA256
    m = Message(method, proxy.origin + path, {"Authorization": "DPoP " + c.leaf})
    if len(c.tokens) > 1:
        m.headers["Agent-Delegation"] = ", ".join(c.tokens[:-1])
    comps = list(components)
    if "?" in path and "@query" not in comps:
        comps.append("@query")
    HTTPMessageSigner(signature_algorithm=alg, key_resolver=OneKey(c.holder)).sign(
        m, key_id=keyid or kid_for(c.holder.did_key()), covered_component_ids=comps, label="sig1",
        nonce=nonce or b64u(os.urandom(12)), created=created, expires=expires, body=body)
    return m.headers


def send(proxy, method: str, path: str, headers: dict[str, str], body: bytes | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=20)
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        return outcome_from_response(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


@pytest.mark.parametrize("alg", ["EdDSA", "ES256"])
def test_signed_request_is_forwarded(proxy, ids, alg):
    c = chain(ids.alice, [ids.agent(alg)], ["echo"])
    for keyid in [None, c.holder.thumbprint()]:  # the agent's verification method, or the jkt
        up = assert_forwarded(send(proxy, "GET", "/echo/s?x=1", signed(proxy, c, "GET", "/echo/s?x=1", keyid=keyid)))
        assert up["mandate-agent"] == [c.holder.did_key()]
        assert "signature" not in up and "signature-input" not in up and "authorization" not in up


def test_signed_body_is_checked_against_content_digest(proxy, ids, upstream):
    c = chain(ids.alice, [ids.agent()], ["files:write"])
    body = os.urandom(300_000)  # several reads and curl callbacks
    comps = ("@method", "@authority", "@path", "authorization", "content-digest")
    h = signed(proxy, c, "PUT", "/upload", body=body, components=comps)
    o = send(proxy, "PUT", "/upload", h, body)
    assert o.status == 200 and o.body["body_sha256"] == hashlib.sha256(body).hexdigest(), str(o)
    # Same length, other bytes: the upstream never gets the whole body (the last byte waits
    # for the digest; the transfer is cut). This echo server counts a short read as a body.
    h = signed(proxy, c, "PUT", "/upload", body=body, components=comps)
    tampered = bytes([body[0] ^ 1]) + body[1:]
    assert_refused(send(proxy, "PUT", "/upload", h, tampered), 400, "invalid_request", "does not match its Content-Digest")
    assert not any(r["body_sha256"] == hashlib.sha256(tampered).hexdigest() for r in upstream.requests)
    # A body must be covered by the signature through Content-Digest.
    h = signed(proxy, c, "PUT", "/upload")
    h["Content-Digest"] = "sha-256=:" + __import__("base64").b64encode(hashlib.sha256(body).digest()).decode() + ":"
    assert_refused(send(proxy, "PUT", "/upload", h, body), 401, "invalid_signature", "must cover content-digest")


def test_refusals(proxy, ids):
    c = chain(ids.alice, [ids.agent()], ["echo"])
    # Authorization must be covered: else the signature could be moved to another token.
    h = signed(proxy, c, "GET", "/echo/x", components=("@method", "@authority", "@path"))
    assert_refused(send(proxy, "GET", "/echo/x", h), 401, "invalid_signature", "must cover authorization")
    # No components at all.
    h = signed(proxy, c, "GET", "/echo/x", components=())
    assert_refused(send(proxy, "GET", "/echo/x", h), 401, "invalid_signature", "must cover @method")
    # The query is covered when there is one.
    h = signed(proxy, c, "GET", "/echo/x")
    assert_refused(send(proxy, "GET", "/echo/x?admin=1", h), 401, "invalid_signature", "must cover @query")
    # A nonce is spent once.
    h = signed(proxy, c, "GET", "/echo/x", nonce="once-only-" + b64u(os.urandom(6)))
    assert_forwarded(send(proxy, "GET", "/echo/x", h))
    assert_refused(send(proxy, "GET", "/echo/x", h), 401, "invalid_signature", "nonce has already been used")
    # Another path than the one signed.
    h = signed(proxy, c, "GET", "/echo/x")
    assert_refused(send(proxy, "GET", "/echo/y", h), 401, "invalid_signature", "does not verify")
    # keyid that is not the bound key.
    other = Key.ed25519()
    h = signed(proxy, c, "GET", "/echo/x", keyid=other.thumbprint())
    assert_refused(send(proxy, "GET", "/echo/x", h), 401, "invalid_signature", "keyid does not name the key")
    # Signed by a key that is not the one the chain is bound to.
    thief = chain(ids.alice, [ids.agent()], ["echo"])
    h = signed(proxy, type(c)(c.tokens, thief.holder), "GET", "/echo/x", keyid=kid_for(c.holder.did_key()))
    assert_refused(send(proxy, "GET", "/echo/x", h), 401, "invalid_signature", "does not verify")
    # Too old.
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=10)
    h = signed(proxy, c, "GET", "/echo/x", created=old)
    assert_refused(send(proxy, "GET", "/echo/x", h), 401, "invalid_signature", "too old")
    # From the future (past dpop_future_skew), and expired.
    now = datetime.datetime.now(datetime.timezone.utc)
    h = signed(proxy, c, "GET", "/echo/x", created=now + datetime.timedelta(minutes=5))
    assert_refused(send(proxy, "GET", "/echo/x", h), 401, "invalid_signature", "from the future")
    h = signed(proxy, c, "GET", "/echo/x", created=now - datetime.timedelta(seconds=20), expires=now - datetime.timedelta(seconds=5))
    assert_refused(send(proxy, "GET", "/echo/x", h), 401, "invalid_signature", "has expired")
    # A DPoP proof and a signature together: which one?
    h = signed(proxy, c, "GET", "/echo/x")
    h["DPoP"] = c.headers("GET", proxy.origin + "/echo/x")["DPoP"]
    assert_refused(send(proxy, "GET", "/echo/x", h), 400, "invalid_request", "send one")
