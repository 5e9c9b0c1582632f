"""RFC 9728 protected resource metadata and the challenges that point at it, as an MCP client or
any standard OAuth client discovers them."""

from __future__ import annotations

import http.client
import json

import pytest

from conftest import OFFLINE
from harness import challenge_params
from test_tls import bound_agent, pki, request, tls_proxy  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(OFFLINE, reason="MANDATE_INTEROP_OFFLINE=1")

WELL_KNOWN = "/.well-known/oauth-protected-resource"


def fetch(port: int, method: str, path: str, headers: dict | None = None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.getheaders(), r.read()
    finally:
        c.close()


def test_metadata_document(proxy):
    status, headers, _, body = fetch(proxy.port, "GET", WELL_KNOWN)
    assert status == 200 and headers["content-type"] == "application/json"
    assert headers.get("mandate-request-id")
    doc = json.loads(body)
    # §3.3: resource is the URL the document was fetched from, without the well-known suffix.
    assert doc["resource"] == proxy.origin
    assert doc["dpop_signing_alg_values_supported"] == ["EdDSA", "ES256"]
    assert doc["dpop_bound_access_tokens_required"] is True
    assert doc["tls_client_certificate_bound_access_tokens"] is False
    assert doc["bearer_methods_supported"] == ["header"]
    assert {"echo", "invoices:read", "payments:write"} <= set(doc["scopes_supported"])


def test_metadata_needs_no_credential_and_head_has_no_body(proxy):
    status, headers, _, body = fetch(proxy.port, "HEAD", WELL_KNOWN)
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0
    status, headers, _, body = fetch(proxy.port, "POST", WELL_KNOWN, {"Content-Length": "0"})
    assert status == 405 and headers["allow"] == "GET, HEAD"
    refusal = json.loads(body)
    assert refusal["error"] == "invalid_request" and refusal["request_id"] == headers["mandate-request-id"]


def test_401_challenges_name_the_metadata(proxy):
    for hdrs in [{}, {"Authorization": "DPoP x.y.z", "DPoP": "a.b.c"}]:
        status, _, raw, _ = fetch(proxy.port, "GET", "/echo/x", hdrs)
        assert status == 401
        challenges = [v for k, v in raw if k.lower() == "www-authenticate"]
        assert len(challenges) == 1  # plain HTTP: only DPoP is acceptable
        assert challenge_params(challenges[0])["resource_metadata"] == proxy.origin + WELL_KNOWN


def test_tls_metadata_reports_certificate_binding_and_no_cert_gets_one_challenge(tls_proxy, ids):
    conn = tls_proxy.connect()  # no client certificate: only DPoP can work
    try:
        o = request(conn, "GET", "/echo/x", {})
        assert o.status == 401 and len(o.response_headers["www-authenticate"]) == 1
        conn.request("GET", WELL_KNOWN)
        doc = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    assert doc["resource"] == tls_proxy.origin
    assert doc["tls_client_certificate_bound_access_tokens"] is True
    assert doc["dpop_bound_access_tokens_required"] is False


def test_bearer_challenge_with_a_client_certificate(tls_proxy, ids, pki, tmp_path):
    a = bound_agent(tmp_path, pki.client_ca, ids.alice, "agent-c")
    conn = tls_proxy.connect(cert=a.files)
    try:
        # One character of the signature changed (its last characters can already be "AAAA": the
        # top bits of an Ed25519 S are zero).
        i = len(a.token) - 10
        forged = a.token[:i] + ("B" if a.token[i] == "A" else "A") + a.token[i + 1:]
        o = request(conn, "GET", "/echo/x", {"Authorization": "Bearer " + forged})
    finally:
        conn.close()
    assert o.status == 401 and o.error == "invalid_token"
    dpop, bearer = o.response_headers["www-authenticate"]
    assert dpop.startswith("DPoP error=\"invalid_token\"")
    assert bearer.startswith("Bearer error=\"invalid_token\", error_description=")
    assert f'resource_metadata="{tls_proxy.origin}{WELL_KNOWN}"' in bearer
