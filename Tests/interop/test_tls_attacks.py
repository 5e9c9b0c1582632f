"""A hostile TLS client against the real binary: stalled and split handshakes, broken records,
orderly and abrupt shutdowns, backpressure, pipelining, client certificates that must not
verify, and cnf members that must not bind. After each, the proxy still serves."""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import OFFLINE
from harness import MANDATE, assert_forwarded, assert_refused
from mandate_creds import Party, b64u, chain, jws, kid_for
from test_tls import PKI, Issued, TLSProxy, bound_agent, client_context, issue, make_ca, request

pytestmark = pytest.mark.skipif(OFFLINE, reason="MANDATE_INTEROP_OFFLINE=1")


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI(make_ca("attack server CA"), make_ca("attack agents CA"), make_ca("attack stranger CA"))


@pytest.fixture(scope="module")
def tp(tmp_path_factory, upstream, ids, pki):
    p = TLSProxy(tmp_path_factory.mktemp("tls-attacks"), upstream.port, ids.alice, pki.server_ca, pki.client_ca,
                 extra=("header_timeout 1s;",))
    yield p
    p.stop()


def tls_socket(tp, listener="optional", cert=None, version=None) -> ssl.SSLSocket:
    ctx = client_context(tp.server_ca_file, cert, version=version)
    return ctx.wrap_socket(socket.create_connection(("127.0.0.1", tp.ports[listener]), timeout=10),
                           server_hostname="127.0.0.1")


def served(tp, ids):
    """The proxy still answers a good request on a fresh TLS connection."""
    c = chain(ids.alice, [ids.agent()], ["echo"])
    conn = tp.connect()
    try:
        assert_forwarded(request(conn, "GET", "/echo/ok", c.headers("GET", f"{tp.origin}/echo/ok")))
    finally:
        conn.close()
    assert tp.proxy.proc.poll() is None


def read_until_closed(s: socket.socket) -> bytes:
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return out
            out += b
    except (ConnectionResetError, ssl.SSLError):
        return out


def client_hello(tp) -> tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO, bytes]:
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_context(tp.server_ca_file).wrap_bio(inc, out, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return obj, inc, out, out.read()


# --- shutdowns -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["TLSv1.2", "TLSv1.3"])
def test_client_close_notify_is_answered_with_close_notify(tp, ids, version):
    # RFC 5246 §7.2.1 / RFC 8446 §6.1: an orderly TLS close from the client gets ours back, so
    # unwrap() completes instead of "EOF occurred in violation of protocol".
    c = chain(ids.alice, [ids.agent()], ["echo"])
    s = tls_socket(tp, version=version)
    h = c.headers("GET", f"{tp.origin}/echo/x")
    s.sendall(b"GET /echo/x HTTP/1.1\r\nHost: a\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in h.items()) + b"\r\n")
    got = b""
    while b"\r\n\r\n" not in got or not got.rstrip().endswith(b"}"):
        got += s.recv(65536)
    assert got.startswith(b"HTTP/1.1 200"), got[:200]
    s.unwrap().close()
    served(tp, ids)


def test_close_notify_in_the_middle_of_a_body_closes_only_that_connection(tp, ids):
    c = chain(ids.alice, [ids.agent()], ["echo"])
    s = tls_socket(tp)
    h = c.headers("POST", f"{tp.origin}/echo/p")
    s.sendall(b"POST /echo/p HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n"
              + b"".join(f"{k}: {v}\r\n".encode() for k, v in h.items()) + b"\r\n" + b"x" * 10)
    try:
        s.unwrap().close()
    except (ssl.SSLError, OSError):
        s.close()
    served(tp, ids)


# --- handshakes ----------------------------------------------------------------------------


def test_stalled_handshake_is_closed_at_header_timeout(tp, ids):
    _, _, _, hello = client_hello(tp)
    with socket.create_connection(("127.0.0.1", tp.ports["optional"]), timeout=10) as s:
        s.sendall(hello[:40])  # slowloris: the ClientHello never completes
        assert read_until_closed(s) == b""  # closed, with no HTTP (there is no TLS to speak it in)
    served(tp, ids)


def test_client_hello_split_byte_by_byte_completes(tp, ids):
    obj, inc, out, hello = client_hello(tp)
    c = chain(ids.alice, [ids.agent()], ["echo"])
    with socket.create_connection(("127.0.0.1", tp.ports["optional"]), timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for b in hello:
            s.send(bytes([b]))
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                s.sendall(out.read())
                inc.write(s.recv(65536))
        h = c.headers("GET", f"{tp.origin}/echo/split")
        obj.write(b"GET /echo/split HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
                  + b"".join(f"{k}: {v}\r\n".encode() for k, v in h.items()) + b"\r\n")
        s.sendall(out.read())
        got = b""
        while True:
            try:
                chunk = obj.read(65536)
                if not chunk:
                    break
                got += chunk
            except ssl.SSLWantReadError:
                data = s.recv(65536)
                if not data:
                    break
                inc.write(data)
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
    assert got.startswith(b"HTTP/1.1 200"), got[:200]


def test_many_half_open_handshakes_do_not_stop_valid_traffic(tp, ids):
    _, _, _, hello = client_hello(tp)
    held = []
    try:
        for i in range(150):
            s = socket.create_connection(("127.0.0.1", tp.ports["optional"]))
            if i % 3:
                s.sendall(hello if i % 3 == 1 else hello[:100])
            held.append(s)
        for _ in range(3):
            served(tp, ids)
    finally:
        for s in held:
            s.close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["TLSv1.2", "TLSv1.3"])
@pytest.mark.parametrize("record", [
    b"\x17\x03\x03\x00\x20" + b"\x00" * 32,   # application data that does not decrypt
    b"\x17\x03\x03\xff\xff" + b"\x00" * 100,  # longer than any record may be (RFC 8446 §5.2)
    b"\x16\x03\x03\x00\x04\x01\x00\x00\x00",  # a ClientHello after the handshake (renegotiation)
    b"\x18\x03\x03\x00\x03\x01\x40\x00",      # heartbeat
], ids=["undecryptable", "oversized", "renegotiation", "heartbeat"])
def test_broken_records_after_the_handshake_close_only_that_connection(tp, ids, version, record):
    t = tls_socket(tp, version=version)
    with socket.socket(fileno=os.dup(t.fileno())) as raw:
        raw.settimeout(10)
        raw.sendall(record)
        read_until_closed(raw)
    t.close()
    served(tp, ids)


# --- HTTP over TLS -------------------------------------------------------------------------


def test_pipelined_requests_over_tls_are_answered_in_order(tp, ids):
    c = chain(ids.alice, [ids.agent()], ["echo"])
    reqs = b""
    for i in range(12):
        h = c.headers("GET", f"{tp.origin}/echo/{i}")
        reqs += f"GET /echo/{i} HTTP/1.1\r\nHost: a\r\n".encode() + b"".join(f"{k}: {v}\r\n".encode() for k, v in h.items()) + b"\r\n"
    reqs += b"GET /echo/last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    s = tls_socket(tp)
    s.sendall(reqs)
    out = read_until_closed(s)
    s.close()
    assert out.count(b"HTTP/1.1 200 OK") == 12 and out.count(b"HTTP/1.1 401") == 1, out[-300:]
    paths = [int(x.split(b'"')[0]) for x in out.split(b'"path": "/echo/')[1:]]
    assert paths == list(range(12))


def test_client_that_stops_reading_a_large_response_gets_all_of_it(tp, ids):
    c = chain(ids.alice, [ids.agent()], ["echo"])
    n = 8 << 20  # far above the output high-water mark: curl is paused, then resumed
    conn = tp.connect()
    try:
        h = c.headers("GET", f"{tp.origin}/echo/bytes/{n}")
        conn.putrequest("GET", f"/echo/bytes/{n}")
        for k, v in h.items():
            conn.putheader(k, v)
        conn.endheaders()
        time.sleep(0.3)  # not reading: the proxy must hold back, not drop or spin
        r = conn.getresponse()
        assert r.status == 200
        body = r.read()
        assert len(body) == n and body[:256] == bytes(range(256))
        assert_forwarded(request(conn, "GET", "/echo/again", c.headers("GET", f"{tp.origin}/echo/again")))
    finally:
        conn.close()


def test_expect_100_continue_upload_over_tls(tp, ids):
    c = chain(ids.alice, [ids.agent()], ["echo"])
    body = b"u" * (1 << 20)
    s = tls_socket(tp)
    h = c.headers("POST", f"{tp.origin}/echo/up")
    s.sendall(b"POST /echo/up HTTP/1.1\r\nHost: a\r\nConnection: close\r\nExpect: 100-continue\r\n"
              + f"Content-Length: {len(body)}\r\n".encode() + b"".join(f"{k}: {v}\r\n".encode() for k, v in h.items()) + b"\r\n")
    got = b""
    while b"\r\n\r\n" not in got:
        got += s.recv(100)
    assert got.startswith(b"HTTP/1.1 100 Continue\r\n"), got
    s.sendall(body)
    out = read_until_closed(s)
    s.close()
    assert b"HTTP/1.1 200 OK" in out and f'"body_length": {len(body)}'.encode() in out, out[:300]


# --- client certificates -------------------------------------------------------------------


def _cert(issuer: Issued | None, cn: str, *, minutes=(-5, 1440), eku=ExtendedKeyUsageOID.CLIENT_AUTH, ca=False,
          path_length=None, signer=None, issuer_name=None) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    b = (x509.CertificateBuilder().subject_name(name)
         .issuer_name(issuer_name or (issuer.cert.subject if issuer else name)).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now + datetime.timedelta(minutes=minutes[0]))
         .not_valid_after(now + datetime.timedelta(minutes=minutes[1]))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True))
    if eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    return Issued(b.sign(signer or (issuer.key if issuer else key), hashes.SHA256()), key)


def _files(tmp_path, name: str, leaf: Issued, *intermediates: Issued) -> tuple[str, str]:
    cert, key = leaf.write(tmp_path, name)
    with open(cert, "ab") as f:
        for i in intermediates:
            f.write(i.cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def test_client_certificates_that_must_not_verify(tp, ids, pki, tmp_path):
    ca = pki.client_ca
    deep = [ca]
    for k in range(5):  # one intermediate more than the verify depth (4) allows
        deep.append(_cert(deep[-1], f"deep {k}", ca=True, eku=None))
    pl0 = _cert(ca, "pathlen 0", ca=True, path_length=0, eku=None)
    below = _cert(pl0, "below pathlen 0", ca=True, eku=None)
    not_ca = _cert(ca, "not a CA", eku=None)
    cases = {
        "expired": (_cert(ca, "expired", minutes=(-100, -10)),),
        "not yet valid": (_cert(ca, "early", minutes=(100, 200)),),
        "serverAuth only": (_cert(ca, "server eku", eku=ExtendedKeyUsageOID.SERVER_AUTH),),
        "self-signed": (_cert(None, "attack agents CA"),),  # even with the CA's name
        "forged signature": (_cert(None, "forged", issuer_name=ca.cert.subject, signer=ec.generate_private_key(ec.SECP256R1())),),
        "another CA": (_cert(pki.stranger_ca, "stranger"),),
        "too deep": (_cert(deep[-1], "deep leaf"), *reversed(deep[1:])),
        "path length": (_cert(below, "pathlen leaf"), below, pl0),
        "issuer not a CA": (_cert(not_ca, "under a leaf"), not_ca),
    }
    for name, parts in cases.items():
        files = _files(tmp_path, name.replace(" ", "-"), *parts)
        for listener in ["optional", "required"]:
            conn = tp.connect(listener, files)
            try:
                o = request(conn, "GET", "/echo/x", {"Authorization": "Bearer x"})
            finally:
                conn.close()
            assert (o.status, o.error) == (400, "invalid_request"), (name, str(o))
            assert_refused(o, 400, "invalid_request", "the client certificate did not verify")
    served(tp, ids)


def test_bound_token_over_a_resumed_session_keeps_its_certificate(tp, ids, pki, tmp_path):
    a = bound_agent(tmp_path, pki.client_ca, ids.alice, "agent-r")
    b = bound_agent(tmp_path, pki.client_ca, ids.alice, "agent-rb")
    for version in [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]:
        ctx = client_context(tp.server_ca_file, b.files, version=version)
        first = ctx.wrap_socket(socket.create_connection(("127.0.0.1", tp.ports["optional"]), timeout=10),
                                server_hostname="127.0.0.1")
        first.sendall(b"GET /echo/1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\nAuthorization: Bearer " + b.token.encode() + b"\r\n\r\n")
        assert read_until_closed(first).startswith(b"HTTP/1.1 200")
        session = first.session
        first.close()
        again = ctx.wrap_socket(socket.create_connection(("127.0.0.1", tp.ports["optional"]), timeout=10),
                                server_hostname="127.0.0.1", session=session)
        # The resumed session is b's certificate: a's token stays refused, b's works.
        again.sendall(b"GET /echo/2 HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " + a.token.encode() + b"\r\n\r\n"
                      b"GET /echo/3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\nAuthorization: Bearer " + b.token.encode() + b"\r\n\r\n")
        out = read_until_closed(again)
        assert again.session_reused
        again.close()
        assert out.startswith(b"HTTP/1.1 401") and b"bound to another client certificate" in out, out[:300]
        assert out.count(b"HTTP/1.1 200 OK") == 1, out[-300:]


def test_client_identity_headers_are_not_believed_over_mtls(tp, ids, pki, tmp_path):
    a = bound_agent(tmp_path, pki.client_ca, ids.alice, "agent-h")
    conn = tp.connect(cert=a.files)
    try:
        up = assert_forwarded(request(conn, "GET", "/echo/h", {**a.bearer, "Mandate-Agent": "did:key:zEvil",
                                                              "mandate_principal": "x", "Mandate-Client-Cert": "x",
                                                              "X-Forwarded-Proto": "http"}))
    finally:
        conn.close()
    assert up["mandate-agent"] == [a.party.did] and up["mandate-principal"] == [ids.alice.did]
    assert up["x-forwarded-proto"] == ["https"] and "mandate-client-cert" not in up


# --- cnf members ---------------------------------------------------------------------------


def _root_with_cnf(principal: Party, agent: Party, cnf_json: bytes) -> str:
    now = int(time.time())
    claims = (b'{"iss":"' + principal.did.encode() + b'","sub":"' + agent.did.encode() + b'","cnf":' + cnf_json
              + b',"scope":"echo","iat":%d,"exp":%d,"jti":"' % (now, now + 600) + b64u(os.urandom(8)).encode() + b'"}')
    header = {"alg": principal.key.alg, "typ": "delegation+jwt", "kid": kid_for(principal.did)}
    return jws(header, claims, principal.key)


def test_cnf_members_that_must_not_bind(tp, ids, pki, tmp_path):
    a = bound_agent(tmp_path, pki.client_ca, ids.alice, "agent-cnf")
    x5t = a.cert.der_sha256().encode()
    jkt = a.party.key.thumbprint().encode()
    cases = {
        b'{"jkt":"' + jkt + b'","x5t#S256":"' + x5t + b'"}': "exactly one of jkt and x5t#S256",
        b'{"x5t#S256":"' + x5t + b'","x5t\\u0023S256":"' + x5t + b'"}': "duplicate",
        b'{"X5T#S256":"' + x5t + b'"}': "exactly one of jkt and x5t#S256",
        b'{"x5t#S256":"' + x5t + b'=="}': "x5t#S256",
        b'{"x5t#S256":["' + x5t + b'"]}': "x5t#S256",
    }
    conn = tp.connect(cert=a.files)
    try:
        for cnf, why in cases.items():
            token = _root_with_cnf(ids.alice, a.party, cnf)
            o = request(conn, "GET", "/echo/cnf", {"Authorization": "Bearer " + token})
            assert_refused(o, 401, "invalid_token", why)
        # The escaped spelling is the same member name (RFC 8259 §7), so alone it binds.
        token = _root_with_cnf(ids.alice, a.party, b'{"x5t\\u0023S256":"' + x5t + b'"}')
        assert assert_forwarded(request(conn, "GET", "/echo/cnf", {"Authorization": "Bearer " + token}))["mandate-agent"] == [a.party.did]
    finally:
        conn.close()


# --- configuration -------------------------------------------------------------------------


def test_encrypted_key_is_refused_without_a_passphrase_prompt(tmp_path, pki):
    # OpenSSL's default would prompt on /dev/tty, or read stdin without one: startup and SIGHUP
    # would hang, or take a passphrase from whatever stdin is.
    server = issue(pki.server_ca, "encrypted", server=True)
    cert, _ = server.write(tmp_path, "enc")
    (tmp_path / "enc.key").write_bytes(server.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"secret")))
    conf = tmp_path / "p.conf"
    conf.write_text("upstream http://127.0.0.1:9;\npublic_origin https://a.example;\n"
                    "listen 127.0.0.1:0 tls { certificate enc.pem; key enc.key; }\n")
    r = subprocess.run([MANDATE, "serve", "--config", str(conf), "--check"], input="secret\n", capture_output=True,
                       text=True, timeout=30, start_new_session=True)  # no controlling terminal
    assert r.returncode != 0, r.stderr
    assert f"key {tmp_path / 'enc.key'} is encrypted" in r.stderr, r.stderr
    assert "pass phrase" not in r.stderr + r.stdout
