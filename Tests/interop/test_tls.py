"""TLS termination and mutual TLS against the real binary, with Python's ssl module (OpenSSL) as
the client and certificates made here with `cryptography`.

RFC 8705: a delegation whose cnf holds x5t#S256 is bound to one client certificate, whose key is
the agent's; it is sent as `Authorization: Bearer` over that certificate, with no DPoP proof.
"""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import signal
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import OFFLINE
from harness import Proxy, free_port, outcome_from_response, assert_forwarded, assert_refused
from mandate_creds import Key, Party, chain, delegation, sha256_b64u, b64u
import hashlib

pytestmark = pytest.mark.skipif(OFFLINE, reason="MANDATE_INTEROP_OFFLINE=1")


# --- a small PKI ---------------------------------------------------------------------------


@dataclass
class Issued:
    cert: x509.Certificate
    key: object

    def der_sha256(self) -> str:
        """RFC 8705 §3.1 x5t#S256: base64url(SHA-256(DER))."""
        return b64u(hashlib.sha256(self.cert.public_bytes(serialization.Encoding.DER)).digest())

    def write(self, d: Path, name: str) -> tuple[str, str]:
        c, k = d / f"{name}.pem", d / f"{name}.key"
        c.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        k.write_bytes(self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
        return str(c), str(k)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return Issued(cert, key)


def issue(ca: Issued, cn: str, key=None, *, server: bool = False) -> Issued:
    key = key or ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.cert.subject).public_key(key.public_key())
         .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                        critical=False))
    if server:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                            critical=False)
    return Issued(b.sign(ca.key, hashes.SHA256()), key)


def client_context(ca_file: str, cert: tuple[str, str] | None = None, *, version: ssl.TLSVersion | None = None,
                   alpn: list[str] | None = ("http/1.1",)) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file)
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if cert:
        ctx.load_cert_chain(*cert)
    return ctx


class TLSProxy:
    """`mandate serve` with three listeners: TLS with optional client certificates, TLS that
    requires them, and plain HTTP."""

    def __init__(self, d: Path, upstream_port: int, principal: Party, server_ca: Issued, client_ca: Issued,
                 extra: tuple[str, ...] = ()):
        self.dir = d
        self.ports = {"optional": free_port(), "required": free_port(), "plain": free_port()}
        self.server_ca_file = str(d / "server-ca.pem")
        Path(self.server_ca_file).write_bytes(server_ca.cert.public_bytes(serialization.Encoding.PEM))
        self.server_cert = issue(server_ca, "mandate", server=True)
        self.server_cert.write(d, "server")
        Path(d / "agents-ca.pem").write_bytes(client_ca.cert.public_bytes(serialization.Encoding.PEM))
        p = self.ports
        self.origin = f"https://127.0.0.1:{p['optional']}"
        self.config = d / "tls.conf"
        self.config.write_text("\n".join([
            f"listen 127.0.0.1:{p['optional']} tls {{ certificate server.pem; key server.key; client_ca agents-ca.pem; }}",
            f"listen 127.0.0.1:{p['required']} tls {{ certificate server.pem; key server.key; client_ca agents-ca.pem; verify_client required; }}",
            f"listen 127.0.0.1:{p['plain']};",
            f"public_origin {self.origin};",
            f"upstream http://127.0.0.1:{upstream_port};",
            f"access_log {d / 'access.log'};",
            "workers 2;",
            f'principal {principal.did} {{ name "Alice"; }}',
            "route /echo/ { scope echo; effect allow; }",
            *extra,
        ]) + "\n")
        self.proxy = Proxy(str(self.config), p["optional"], d / "access.log")
        self.started_output = self.proxy.output()

    def connect(self, listener: str = "optional", cert: tuple[str, str] | None = None, **kw) -> http.client.HTTPSConnection:
        c = http.client.HTTPSConnection("127.0.0.1", self.ports[listener], timeout=10,
                                        context=client_context(self.server_ca_file, cert, **kw))
        c.connect()
        return c

    def stop(self):
        self.proxy.stop()


def request(conn: http.client.HTTPConnection, method: str, path: str, headers: dict[str, str], body: bytes | None = None):
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    return outcome_from_response(r.status, r.getheaders(), r.read())


@dataclass
class PKI:
    server_ca: Issued
    client_ca: Issued
    stranger_ca: Issued


@pytest.fixture(scope="module")
def pki() -> PKI:
    return PKI(make_ca("mandate test server CA"), make_ca("mandate test agents CA"), make_ca("somebody else's CA"))


@pytest.fixture(scope="module")
def tls_proxy(tmp_path_factory, upstream, ids, pki):
    p = TLSProxy(tmp_path_factory.mktemp("tls"), upstream.port, ids.alice, pki.server_ca, pki.client_ca)
    yield p
    p.stop()


@dataclass
class BoundAgent:
    party: Party
    cert: Issued
    files: tuple[str, str]
    token: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": "Bearer " + self.token}


def bound_agent(d: Path, ca: Issued, principal: Party, name: str, key: Key | None = None, *, cert_key=None) -> BoundAgent:
    """An agent whose client certificate carries its own DID key, and a root delegation bound to
    that certificate (cnf x5t#S256)."""
    party = Party.of(key or Key.ed25519())
    cert = issue(ca, name, cert_key or party.key.private)
    token = delegation(principal, party.did, "", "echo", cnf={"x5t#S256": cert.der_sha256()})
    return BoundAgent(party, cert, cert.write(d, name), token)


# --- TLS termination -----------------------------------------------------------------------


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_dpop_request_over_tls(tls_proxy, ids, version):
    c = chain(ids.alice, [ids.agent()], ["echo"])
    conn = tls_proxy.connect(version=version)
    try:
        assert conn.sock.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
        assert conn.sock.selected_alpn_protocol() == "http/1.1"
        # htu names the https public origin; several requests on one TLS connection.
        for i in range(3):
            up = assert_forwarded(request(conn, "GET", f"/echo/{i}", c.headers("GET", f"{tls_proxy.origin}/echo/{i}")))
            assert up["x-forwarded-proto"] == ["https"]
            assert "authorization" not in up and "dpop" not in up
    finally:
        conn.close()


def test_large_bodies_cross_tls_in_both_directions(tls_proxy, ids):
    c = chain(ids.alice, [ids.agent()], ["echo"])
    body = bytes(range(256)) * 8192  # 2 MiB: many TLS records each way
    conn = tls_proxy.connect()
    try:
        o = request(conn, "POST", "/echo/upload", c.headers("POST", f"{tls_proxy.origin}/echo/upload"), body)
        assert o.status == 200 and o.body["body_length"] == len(body), str(o)
        assert o.body["body_sha256"] == hashlib.sha256(body).hexdigest()
        o = request(conn, "GET", "/echo/after", c.headers("GET", f"{tls_proxy.origin}/echo/after"))
        assert o.status == 200, str(o)
    finally:
        conn.close()


def test_alpn_without_http11_is_refused(tls_proxy):
    # RFC 7301 §3.2: no_application_protocol.
    with pytest.raises(ssl.SSLError, match="NO_APPLICATION_PROTOCOL|no application protocol"):
        tls_proxy.connect(alpn=["h2"])
    # A client that offers no ALPN at all is served.
    conn = tls_proxy.connect(alpn=None)
    assert conn.sock.selected_alpn_protocol() is None
    conn.close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_below_1_2_and_suites_without_forward_secrecy_are_refused(tls_proxy):
    def handshake(version: ssl.TLSVersion, ciphers: str):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_ciphers(ciphers)
        ctx.minimum_version = ctx.maximum_version = version
        with socket.create_connection(("127.0.0.1", tls_proxy.ports["optional"]), timeout=10) as s:
            ctx.wrap_socket(s).close()

    # The alerts come from the server: the client offered these.
    with pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION"):
        handshake(ssl.TLSVersion.TLSv1_1, "ALL:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE"):
        handshake(ssl.TLSVersion.TLSv1_2, "AES128-SHA:AES256-GCM-SHA384")  # RSA key exchange
    handshake(ssl.TLSVersion.TLSv1_2, "ECDHE+AESGCM")


def test_plain_http_to_the_tls_port_gets_400(tls_proxy):
    conn = http.client.HTTPConnection("127.0.0.1", tls_proxy.ports["optional"], timeout=10)
    try:
        o = request(conn, "GET", "/echo/x", {})
    finally:
        conn.close()
    assert_refused(o, 400, "invalid_request", "plain HTTP was sent to a TLS port")


def test_stalled_handshake_is_closed_and_others_are_served(tls_proxy, ids):
    # Open TCP connections that never start or finish a handshake, then a real client: it is
    # served at once; the stalled ones are closed at header_timeout (10 s, not waited for here).
    idle = [socket.create_connection(("127.0.0.1", tls_proxy.ports["optional"])) for _ in range(20)]
    for s in idle[:10]:
        s.sendall(b"\x16\x03\x01\x00")  # the start of a record, and nothing more
    try:
        c = chain(ids.alice, [ids.agent()], ["echo"])
        conn = tls_proxy.connect()
        assert_forwarded(request(conn, "GET", "/echo/x", c.headers("GET", f"{tls_proxy.origin}/echo/x")))
        conn.close()
    finally:
        for s in idle:
            s.close()


def test_garbage_instead_of_a_handshake_closes_only_that_connection(tls_proxy, ids):
    for junk in [b"\x16\x03\x01\xff\xff" + b"\x00" * 64, b"\x00" * 100, bytes(range(256))]:
        with socket.create_connection(("127.0.0.1", tls_proxy.ports["optional"]), timeout=10) as s:
            s.sendall(junk)
            s.settimeout(10)
            try:
                while s.recv(4096):
                    pass
            except (ConnectionResetError, socket.timeout):
                pass
    c = chain(ids.alice, [ids.agent()], ["echo"])
    conn = tls_proxy.connect()
    assert_forwarded(request(conn, "GET", "/echo/x", c.headers("GET", f"{tls_proxy.origin}/echo/x")))
    conn.close()


# --- mutual TLS and RFC 8705 binding -------------------------------------------------------


def test_certificate_bound_delegation_over_its_certificate(tls_proxy, ids, pki, tmp_path):
    a = bound_agent(tmp_path, pki.client_ca, ids.alice, "agent-a")
    for listener in ["optional", "required"]:
        conn = tls_proxy.connect(listener, a.files)
        try:
            for i in range(2):  # no proof, so nothing is single-use: the token works again
                up = assert_forwarded(request(conn, "GET", f"/echo/{i}", a.bearer))
                assert up["mandate-agent"] == [a.party.did]
                assert up["mandate-principal"] == [ids.alice.did]
                assert up["x-forwarded-proto"] == ["https"]
                assert "authorization" not in up
        finally:
            conn.close()


def test_p256_agent_certificate_binds_too(tls_proxy, ids, pki, tmp_path):
    a = bound_agent(tmp_path, pki.client_ca, ids.alice, "agent-p256", Key.p256())
    conn = tls_proxy.connect(cert=a.files)
    try:
        assert assert_forwarded(request(conn, "GET", "/echo/p", a.bearer))["mandate-agent"] == [a.party.did]
    finally:
        conn.close()


def test_bound_delegation_over_another_certificate_is_refused(tls_proxy, ids, pki, tmp_path):
    a = bound_agent(tmp_path, pki.client_ca, ids.alice, "agent-a")
    b = bound_agent(tmp_path, pki.client_ca, ids.alice, "agent-b")
    conn = tls_proxy.connect(cert=b.files)
    try:
        assert_refused(request(conn, "GET", "/echo/x", a.bearer), 401, "invalid_token", "bound to another client certificate")
        # The connection stays usable for b's own token.
        assert_forwarded(request(conn, "GET", "/echo/x", b.bearer))
    finally:
        conn.close()


def test_same_key_in_another_certificate_is_refused(tls_proxy, ids, pki, tmp_path):
    # x5t#S256 pins the certificate, not just the key.
    a = bound_agent(tmp_path, pki.client_ca, ids.alice, "agent-a")
    again = issue(pki.client_ca, "agent-a-reissued", a.party.key.private)
    conn = tls_proxy.connect(cert=again.write(tmp_path, "agent-a-reissued"))
    try:
        assert_refused(request(conn, "GET", "/echo/x", a.bearer), 401, "invalid_token", "bound to another client certificate")
    finally:
        conn.close()


def test_certificate_whose_key_is_not_the_agents_is_refused(tls_proxy, ids, pki, tmp_path):
    # The delegator named agent X as sub but bound the token to a certificate for another key.
    a = bound_agent(tmp_path, pki.client_ca, ids.alice, "agent-x", cert_key=ec.generate_private_key(ec.SECP256R1()))
    conn = tls_proxy.connect(cert=a.files)
    try:
        assert_refused(request(conn, "GET", "/echo/x", a.bearer), 401, "invalid_token", "not the key of the agent")
    finally:
        conn.close()


def test_bound_delegation_without_a_client_certificate_is_refused(tls_proxy, ids, pki, tmp_path):
    a = bound_agent(tmp_path, pki.client_ca, ids.alice, "agent-a")
    conn = tls_proxy.connect()
    try:
        assert_refused(request(conn, "GET", "/echo/x", a.bearer), 401, "invalid_token", "mutual TLS")
    finally:
        conn.close()
    plain = http.client.HTTPConnection("127.0.0.1", tls_proxy.ports["plain"], timeout=10)
    try:
        assert_refused(request(plain, "GET", "/echo/x", a.bearer), 401, "invalid_token", "mutual TLS")
    finally:
        plain.close()


def test_dpop_bound_delegation_as_bearer_over_mtls_is_refused(tls_proxy, ids, pki, tmp_path):
    # RFC 9449 §7.2: no downgrade, even with a good client certificate on the connection.
    a = bound_agent(tmp_path, pki.client_ca, ids.alice, "agent-a")
    c = chain(ids.alice, [ids.agent()], ["echo"])
    conn = tls_proxy.connect(cert=a.files)
    try:
        assert_refused(request(conn, "GET", "/echo/x", {"Authorization": "Bearer " + c.leaf}), 401, "invalid_token", "DPoP-bound")
        # And a DPoP request over a mutual TLS connection is still a DPoP request.
        assert_forwarded(request(conn, "GET", "/echo/x", c.headers("GET", f"{tls_proxy.origin}/echo/x")))
    finally:
        conn.close()


def test_certificate_from_another_ca_is_refused(tls_proxy, ids, pki, tmp_path):
    a = bound_agent(tmp_path, pki.stranger_ca, ids.alice, "agent-s")
    conn = tls_proxy.connect(cert=a.files)
    try:
        o = request(conn, "GET", "/echo/x", a.bearer)
    finally:
        conn.close()
    assert_refused(o, 400, "invalid_request", "client certificate did not verify")


def test_required_listener_without_a_certificate_gets_400(tls_proxy, ids):
    c = chain(ids.alice, [ids.agent()], ["echo"])
    conn = tls_proxy.connect("required")
    try:
        o = request(conn, "GET", "/echo/x", c.headers("GET", f"{tls_proxy.origin}/echo/x"))
    finally:
        conn.close()
    assert_refused(o, 400, "invalid_request", "requires a client certificate")


# --- certificates reload on SIGHUP -----------------------------------------------------------


def served_certificate(port: int, ca_file: str) -> x509.Certificate:
    ctx = client_context(ca_file)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            return x509.load_der_x509_certificate(t.getpeercert(binary_form=True))


def wait_for(proxy: Proxy, text: str, after: int):
    deadline = time.monotonic() + 10
    while text not in proxy.output()[after:]:
        assert time.monotonic() < deadline, f"no {text!r} in: {proxy.output()[-2000:]}"
        time.sleep(0.05)


def test_sighup_reloads_the_certificate_without_dropping_connections(tmp_path, upstream, ids, pki):
    p = TLSProxy(tmp_path, upstream.port, ids.alice, pki.server_ca, pki.client_ca)
    try:
        port = p.ports["optional"]
        first = served_certificate(port, p.server_ca_file)
        c = chain(ids.alice, [ids.agent()], ["echo"])
        live = p.connect()
        assert_forwarded(request(live, "GET", "/echo/1", c.headers("GET", f"{p.origin}/echo/1")))

        issue(pki.server_ca, "mandate renewed", server=True).write(tmp_path, "server")
        mark = len(p.proxy.output())
        p.proxy.proc.send_signal(signal.SIGHUP)
        wait_for(p.proxy, "reloaded", mark)
        renewed = served_certificate(port, p.server_ca_file)
        assert renewed.serial_number != first.serial_number
        assert renewed.subject.rfc4514_string() == "CN=mandate renewed"
        # The connection opened before the reload still works, on its old session.
        assert_forwarded(request(live, "GET", "/echo/2", c.headers("GET", f"{p.origin}/echo/2")))
        live.close()

        # A broken certificate file: the reload says so, and the running certificate stays.
        (tmp_path / "server.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        mark = len(p.proxy.output())
        p.proxy.proc.send_signal(signal.SIGHUP)
        wait_for(p.proxy, "keeping", mark)
        assert str(tmp_path / "tls.conf") in p.proxy.output()[mark:]
        assert served_certificate(port, p.server_ca_file).serial_number == renewed.serial_number
        assert p.proxy.proc.poll() is None
    finally:
        p.stop()


def test_serve_check_names_a_bad_certificate_file(tmp_path):
    import subprocess
    from harness import MANDATE
    (tmp_path / "key.pem").write_text("nothing\n")
    conf = tmp_path / "p.conf"
    conf.write_text("upstream http://127.0.0.1:9;\npublic_origin https://a.example;\n"
                    "listen 127.0.0.1:0 tls { certificate missing.pem; key key.pem; }\n")
    r = subprocess.run([MANDATE, "serve", "--config", str(conf), "--check"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert f"{conf}:3: tls: certificate {tmp_path / 'missing.pem'}" in r.stderr, r.stderr


# --- the CLI: delegate --bind-cert, request --cert ------------------------------------------


def run(*args, check=True):
    import subprocess
    from harness import MANDATE
    r = subprocess.run([MANDATE, *args], capture_output=True, text=True, timeout=60)
    if check:
        assert r.returncode == 0, f"mandate {args[0]}: {r.returncode} {r.stdout} {r.stderr}"
    return r


def test_cli_binds_a_delegation_to_a_certificate_and_sends_it(tls_proxy, ids, pki, tmp_path):
    (tmp_path / "alice.jwk").write_text(json.dumps(ids.alice.key.private_jwk()))
    agent = Key.ed25519()
    cert_file, key_file = issue(pki.client_ca, "cli-agent", agent.private).write(tmp_path, "cli-agent")
    token = run("delegate", "--key", str(tmp_path / "alice.jwk"), "--bind-cert", cert_file, "--scope", "echo",
                "--ttl", "10m").stdout.strip()
    claims = json.loads(__import__("base64").urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims["sub"] == agent.did_key()  # the delegate is the certificate's key
    assert claims["cnf"] == {"x5t#S256": Issued(x509.load_pem_x509_certificate(Path(cert_file).read_bytes()), None).der_sha256()}
    (tmp_path / "chain.txt").write_text(token + "\n")
    url = f"{tls_proxy.origin}/echo/cli"
    r = run("request", "--cacert", tls_proxy.server_ca_file, "--cert", cert_file, "--cert-key", key_file,
            "--chain", str(tmp_path / "chain.txt"), url)
    echo = json.loads(r.stdout)
    assert [v for k, v in echo["headers"] if k.lower() == "mandate-agent"] == [agent.did_key()]
    # Without the certificate the CLI says what is missing (usage, 2) and sends nothing.
    r = run("request", "--cacert", tls_proxy.server_ca_file, "--chain", str(tmp_path / "chain.txt"), url, check=False)
    assert r.returncode == 2 and "bound to a client certificate" in r.stderr, r.stderr
    # Over another certificate the proxy refuses it: 401, exit 22.
    other_cert, other_key = issue(pki.client_ca, "cli-other", Key.ed25519().private).write(tmp_path, "cli-other")
    r = run("request", "--cacert", tls_proxy.server_ca_file, "--cert", other_cert, "--cert-key", other_key,
            "--chain", str(tmp_path / "chain.txt"), url, check=False)
    assert r.returncode == 22 and "bound to another client certificate" in r.stdout, (r.stdout, r.stderr)


def test_cli_refuses_to_bind_a_certificate_that_cannot_work(ids, pki, tmp_path):
    (tmp_path / "alice.jwk").write_text(json.dumps(ids.alice.key.private_jwk()))
    agent = Key.ed25519()
    cert_file, _ = issue(pki.client_ca, "agent", agent.private).write(tmp_path, "agent")
    someone = Key.ed25519().did_key()
    r = run("delegate", "--key", str(tmp_path / "alice.jwk"), "--bind-cert", cert_file, "--to", someone,
            "--scope", "echo", "--ttl", "10m", check=False)
    assert r.returncode == 1 and f"the certificate's key is {agent.did_key()}, not --to {someone}" in r.stderr, r.stderr
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    r = run("delegate", "--key", str(tmp_path / "alice.jwk"), "--bind-cert", str(tmp_path / "junk.pem"),
            "--scope", "echo", "--ttl", "10m", check=False)
    assert r.returncode == 1 and f"{tmp_path / 'junk.pem'}: not a PEM certificate" in r.stderr, r.stderr


def test_explain_with_a_client_certificate_and_the_proof_in_the_log(tls_proxy, ids, pki, tmp_path):
    a = bound_agent(tmp_path, pki.client_ca, ids.alice, "agent-explain")
    args = ["explain", "--config", str(tls_proxy.config), "-H", "Authorization: Bearer " + a.token, "/echo/x"]
    assert run(*args, check=False).stdout.startswith("refuse 401 invalid_token")  # no certificate: no binding
    r = run(*args[:1], "--cert", a.files[0], *args[1:])
    assert r.stdout.startswith("forward /echo/x"), r.stdout + r.stderr
    conn = tls_proxy.connect(cert=a.files)
    try:
        assert_forwarded(request(conn, "GET", "/echo/logged", a.bearer))
    finally:
        conn.close()
    deadline = time.monotonic() + 5
    while True:
        log = [json.loads(l) for l in (tls_proxy.dir / "access.log").read_text().splitlines()]
        if any(r["path"] == "/echo/logged" for r in log):
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert [r["proof"] for r in log if r["path"] == "/echo/logged"] == ["mtls"]
