"""Attacks found against a running proxy, kept as regressions. Each runs through the real binary."""

from __future__ import annotations

import socket

from harness import assert_forwarded, assert_refused
from mandate_creds import Chain, Key, Party, chain, delegation


def send(proxy, c: Chain, method="GET", path="/echo/x", body=None, headers=None):
    h = c.headers(method, proxy.origin + path.split("?")[0])
    h.update(headers or {})
    return proxy.send(method, path, h, body)


def test_overflowing_exp_is_refused_and_the_proxy_survives(proxy, ids):
    """exp = 2^63-1 once trapped on `exp + skew` and killed the process, for anyone."""
    a = ids.agent()
    t = delegation(ids.alice, a.did, a.key.thumbprint(), "echo", exp=2**63 - 1)
    assert_refused(send(proxy, Chain([t], a.key)), 401, "invalid_token")
    stranger = Party.of(Key.ed25519())
    t = delegation(stranger, a.did, a.key.thumbprint(), "echo", iat=1, exp=2**63 - 1)
    assert_refused(send(proxy, Chain([t], a.key)), 401, "invalid_token")
    assert proxy.proc.poll() is None
    assert_forwarded(send(proxy, chain(ids.alice, [a], ["echo"])))


def test_leaf_cannot_name_another_agent_as_its_subject(proxy, ids):
    """An agent sub-delegating to its own key but naming a victim's DID as sub was once
    forwarded as Mandate-Agent: <victim>."""
    a, victim = ids.agent("ES256"), ids.agent("EdDSA")
    mine = Key.ed25519()
    t1 = delegation(ids.alice, a.did, a.key.thumbprint(), "echo")
    t2 = delegation(a, victim.did, mine.thumbprint(), "echo", parent=t1)
    assert_refused(send(proxy, Chain([t1, t2], mine)), 401, "invalid_token", "cnf.jkt")


def test_get_with_body_reaches_the_upstream_as_get(proxy, ids):
    """libcurl's UPLOAD once turned a GET with a body into a PUT: read scope doing a write."""
    a = ids.agent()
    o = send(proxy, chain(ids.alice, [a], ["echo"]), "GET", "/echo/g", body=b'{"x":1}')
    assert_forwarded(o)
    assert o.body["method"] == "GET" and o.body["body_length"] == 7


def test_refusal_with_connection_close_closes(proxy):
    """A refused bodiless request with Connection: close once left the connection open forever;
    10k of them locked valid clients out."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(b"GET /echo/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 401 ")


def test_path_parameters_are_refused(proxy, ids):
    """Servlet containers read /x;y/ as /x/: '..;/' would climb past a prefix route."""
    a = ids.agent()
    for path in ["/echo/..;/admin/x", "/echo;/x"]:
        o = send(proxy, chain(ids.alice, [a], ["echo"]), "GET", path)
        assert_refused(o, 400, "invalid_request", "path parameter")


def test_fragment_in_target_is_a_bad_request(proxy):
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(b"GET /echo/4#2 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(64).startswith(b"HTTP/1.1 400 ")
