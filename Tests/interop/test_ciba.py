"""The built-in approval service against a CIBA client written here from OpenID CIBA Core 1.0
(plain http.client), with the real `mandate serve` and the real `mandate approve`/`deny`
deciding with the principal's key; ID tokens verified with jwcrypto against the JWKS."""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import socket
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
from jwcrypto import jwk, jwt

from conftest import OFFLINE
from harness import MANDATE, Proxy, config_text, free_port
from mandate_creds import Key

pytestmark = pytest.mark.skipif(OFFLINE, reason="MANDATE_INTEROP_OFFLINE=1")

GRANT = "urn:openid:params:grant-type:ciba"
SECRETS = {"shop": "s" * 40, "bank": "b" * 40, "pinger": "p" * 40}


def mandate(*args):
    return subprocess.run([MANDATE, *args], capture_output=True, text=True, timeout=60)


class Notifications(http.server.BaseHTTPRequestHandler):
    """A ping client's notification endpoint (CIBA §10.2)."""

    received: list = []
    arrived = threading.Event()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Notifications.received.append((self.headers.get("Authorization"), self.headers.get("Content-Type"), json.loads(body)))
        Notifications.arrived.set()
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a):
        pass


class Service:
    """`mandate serve` with an approval block, three CIBA clients (two poll, one ping) and Alice."""

    def __init__(self, d: Path, upstream_port: int, interval: str, notify_port: int):
        d.mkdir(parents=True, exist_ok=True)
        self.dir = d
        for name in ("alice", "approval", "mallory"):
            r = mandate("keygen", "--alg", "EdDSA" if name != "mallory" else "ES256", "--out", str(d / f"{name}.jwk"))
            assert r.returncode == 0, r.stderr
        self.alice = Key.from_jwk(json.loads((d / "alice.jwk").read_text())).did_key()
        for c, s in SECRETS.items():
            (d / f"{c}.secret").write_text(s + "\n")
        self.port, self.approval_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.approval_port}"
        extra = f"""
approval {{ listen 127.0.0.1:{self.approval_port}; key approval.jwk; expires_in 60s; interval {interval}; }}
ciba_client shop {{ secret_file shop.secret; }}
ciba_client bank {{ secret_file bank.secret; delivery poll; }}
ciba_client pinger {{ secret_file pinger.secret; delivery ping; notification_endpoint http://127.0.0.1:{notify_port}/cb; }}
"""
        conf = d / "proxy.conf"
        conf.write_text(config_text(self.port, upstream_port, {"Alice": self.alice}, "off", extra))
        self.config = str(conf)
        self.proxy = Proxy(self.config, self.port, d / "proxy.log")
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.approval_port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, self.proxy.output()
                time.sleep(0.05)

    def post(self, path: str, form: dict, client: str | None = "shop", secret: str | None = None):
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if client:
            cred = f"{urllib.parse.quote(client)}:{urllib.parse.quote(secret or SECRETS[client])}"
            headers["Authorization"] = "Basic " + base64.b64encode(cred.encode()).decode()
        return self.request("POST", path, urllib.parse.urlencode(form).encode(), headers)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        c = http.client.HTTPConnection("127.0.0.1", self.approval_port, timeout=20)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, json.loads(data) if data else None
        finally:
            c.close()

    def authorize(self, client="shop", **extra):
        form = {"scope": "openid", "login_hint": self.alice, "binding_message": "pay 100 EUR to Bob", **extra}
        status, headers, body = self.post("/bc-authorize", form, client)
        assert status == 200, body
        return body

    def token(self, auth_req_id: str, client="shop"):
        return self.post("/token", {"grant_type": GRANT, "auth_req_id": auth_req_id}, client)

    def decide(self, verb: str, auth_req_id: str, key: str = "alice.jwk"):
        return mandate(verb, auth_req_id, "--key", str(self.dir / key), "--url", self.url)

    def stop(self):
        self.proxy.stop()


@pytest.fixture(scope="module")
def notifications():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Notifications)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def service(tmp_path_factory, upstream, notifications):
    s = Service(tmp_path_factory.mktemp("ciba"), upstream.port, "1s", notifications.server_address[1])
    yield s
    s.stop()


def assert_error(response, status: int, code: str):
    got_status, headers, body = response
    assert (got_status, body and body.get("error")) == (status, code), response
    assert set(body) == {"error", "error_description"}, body


def test_discovery_names_the_ciba_endpoints(service):
    status, _, d = service.request("GET", "/.well-known/openid-configuration")
    assert status == 200
    assert d["backchannel_authentication_endpoint"] == service.url + "/bc-authorize"
    assert d["token_endpoint"] == service.url + "/token"
    assert d["grant_types_supported"] == [GRANT]
    assert d["backchannel_token_delivery_modes_supported"] == ["poll", "ping"]
    assert d["backchannel_user_code_parameter_supported"] is False
    status, _, keys = service.request("GET", urllib.parse.urlparse(d["jwks_uri"]).path)
    assert status == 200 and len(keys["keys"]) == 1 and "d" not in keys["keys"][0]


def test_poll_flow_approved_with_mandate_approve(service):
    a = service.authorize()
    assert len(base64.urlsafe_b64decode(a["auth_req_id"] + "==")) >= 16  # §7.3: at least 128 bits
    assert a["expires_in"] == 60 and a["interval"] == 1
    assert_error(service.token(a["auth_req_id"]), 400, "authorization_pending")

    r = service.decide("approve", a["auth_req_id"])
    assert r.returncode == 0, r.stderr
    assert "pay 100 EUR to Bob" in r.stderr and service.alice in r.stderr
    time.sleep(1.1)  # the interval
    status, headers, t = service.token(a["auth_req_id"])
    assert status == 200, t
    assert headers.get("cache-control") == "no-store"
    assert t["token_type"] == "Bearer" and t["access_token"] and t["expires_in"] > 0

    # The ID token verifies against the published key set and names the request (§10.1.1).
    _, _, keys = service.request("GET", "/jwks.json")
    token = jwt.JWT(jwt=t["id_token"], key=jwk.JWKSet.from_json(json.dumps(keys)),
                    check_claims={"iss": service.url, "aud": "shop", "sub": service.alice, "exp": None})
    claims = json.loads(token.claims)
    assert claims["urn:openid:params:jwt:claim:auth_req_id"] == a["auth_req_id"]
    assert claims["auth_time"] <= claims["iat"]

    # Single use.
    assert_error(service.token(a["auth_req_id"]), 400, "invalid_grant")


def test_denied_with_mandate_deny(service):
    a = service.authorize(login_hint="Alice")  # the configured name identifies her too
    r = service.decide("deny", a["auth_req_id"])
    assert r.returncode == 0, r.stderr
    assert_error(service.token(a["auth_req_id"]), 400, "access_denied")
    # A decision is made once.
    r = service.decide("approve", a["auth_req_id"])
    assert r.returncode != 0 and "denied" in r.stderr


def test_expired_request_answers_expired_token(service):
    a = service.authorize(requested_expiry="1")
    assert a["expires_in"] == 1
    time.sleep(2.1)
    assert_error(service.token(a["auth_req_id"]), 400, "expired_token")
    r = service.decide("approve", a["auth_req_id"])
    assert r.returncode != 0 and "expired" in r.stderr


def test_invalid_grant_for_another_clients_or_an_unknown_id(service):
    a = service.authorize(client="shop")
    assert_error(service.token(a["auth_req_id"], client="bank"), 400, "invalid_grant")
    assert_error(service.token("A" * 43), 400, "invalid_grant")
    # The other client's attempt did not spend it.
    assert_error(service.token(a["auth_req_id"]), 400, "authorization_pending")


def test_client_authentication(service):
    r = service.post("/bc-authorize", {"scope": "openid", "login_hint": service.alice}, "shop", secret="wrong" * 8)
    assert_error(r, 401, "invalid_client")
    assert r[1].get("www-authenticate", "").startswith("Basic")
    assert_error(service.post("/bc-authorize", {"scope": "openid", "login_hint": service.alice}, None), 401, "invalid_client")
    assert_error(service.post("/token", {"grant_type": GRANT, "auth_req_id": "x"}, "nobody", secret="x" * 40), 401, "invalid_client")


def test_authentication_request_errors(service):
    alice = service.alice
    assert_error(service.post("/bc-authorize", {"scope": "profile", "login_hint": alice}), 400, "invalid_scope")
    assert_error(service.post("/bc-authorize", {"scope": "openid", "login_hint": "did:key:z6MkNobodyHere"}), 400, "unknown_user_id")
    assert_error(service.post("/bc-authorize", {"scope": "openid"}), 400, "invalid_request")
    assert_error(service.post("/bc-authorize", {"scope": "openid", "login_hint": alice, "binding_message": "x\nforged line"}),
                 400, "invalid_binding_message")
    assert_error(service.post("/bc-authorize", {"scope": "openid", "login_hint": alice, "requested_expiry": "-3"}), 400, "invalid_request")
    # Ping clients must send client_notification_token (§7.1).
    assert_error(service.post("/bc-authorize", {"scope": "openid", "login_hint": alice}, "pinger"), 400, "invalid_request")
    assert_error(service.post("/token", {"grant_type": "authorization_code", "code": "x"}), 400, "unsupported_grant_type")


def test_mandate_approve_refuses_the_wrong_key_and_unknown_ids(service):
    a = service.authorize()
    r = service.decide("approve", a["auth_req_id"], key="mallory.jwk")
    assert r.returncode != 0 and "mallory.jwk" in r.stderr and "not the key of" in r.stderr, r.stderr
    r = service.decide("approve", "A" * 43)
    assert r.returncode != 0 and "unknown" in r.stderr, r.stderr
    r = mandate("approve", a["auth_req_id"], "--key", str(service.dir / "alice.jwk"), "--url", f"http://127.0.0.1:{free_port()}")
    assert r.returncode != 0 and "cannot reach" in r.stderr, r.stderr
    r = mandate("approve", a["auth_req_id"], "--key", str(service.dir / "alice.jwk"), "--config", service.config)
    assert r.returncode == 0, r.stderr  # public_url from the config


def test_a_forged_receipt_is_refused(service):
    """Signed by another key, claiming to be Alice's: the service checks Alice's DID key."""
    from mandate_creds import jws
    a = service.authorize()
    mallory = Key.from_jwk(json.loads((service.dir / "mallory.jwk").read_text()))
    _, _, d = service.request("GET", f"/approvals/{a['auth_req_id']}")
    now = int(time.time())
    forged = jws({"alg": "ES256", "typ": "approval+jwt"},
                 {"iss": service.alice, "sub": a["auth_req_id"], "decision": "approve", "binding_message": d["binding_message"],
                  "iat": now, "exp": now + 60}, mallory)
    status, _, body = service.request("POST", f"/approvals/{a['auth_req_id']}/decision", json.dumps({"receipt": forged}).encode(),
                                      {"Content-Type": "application/json"})
    assert status == 400 and "not signed by" in body["error_description"], body
    assert_error(service.token(a["auth_req_id"]), 400, "authorization_pending")


def test_ping_mode_notifies_the_client(service):
    Notifications.received.clear()
    Notifications.arrived.clear()
    a = service.authorize(client="pinger", client_notification_token="ping-token-123")
    r = service.decide("approve", a["auth_req_id"])
    assert r.returncode == 0, r.stderr
    assert Notifications.arrived.wait(15), service.proxy.output()
    auth, ctype, body = Notifications.received[0]
    assert auth == "Bearer ping-token-123" and ctype == "application/json"
    assert body == {"auth_req_id": a["auth_req_id"]}
    status, _, t = service.token(a["auth_req_id"], client="pinger")
    assert status == 200 and t["id_token"], t


def test_slow_down_when_polling_faster_than_the_interval(tmp_path, upstream, notifications):
    s = Service(tmp_path, upstream.port, "5s", notifications.server_address[1])
    try:
        a = s.authorize()
        assert a["interval"] == 5
        assert_error(s.token(a["auth_req_id"]), 400, "authorization_pending")
        assert_error(s.token(a["auth_req_id"]), 400, "slow_down")
        assert_error(s.token(a["auth_req_id"]), 400, "slow_down")
    finally:
        s.stop()
