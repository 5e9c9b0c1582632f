"""An external OpenID CIBA provider for the interop tests, written from CIBA Core 1.0 alone
(independent of Mandate's built-in service): the backchannel authentication endpoint (§7) and
the token endpoint in poll mode (§10.1, §11), client_secret_basic, over HTTPS, with ID tokens
signed by jwcrypto (ES256). A test decides for the person with `decide(...)`."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from urllib.parse import unquote_plus

from flask import Flask, jsonify, request
from jwcrypto import jwk, jwt
from werkzeug.serving import make_server


class CIBAProvider:
    def __init__(self, cert: str, key: str, client_id: str, secret: str, interval: int = 1):
        self.client_id, self.secret, self.interval = client_id, secret, interval
        self.key = jwk.JWK.generate(kty="EC", crv="P-256", kid="op-1")
        self.lock = threading.Lock()
        self.requests: dict[str, dict] = {}   # auth_req_id → {login_hint, binding_message, decision, expires, last_poll}
        self.down = False
        self.slow_downs = 0
        app = Flask("ciba-provider")

        def authenticated() -> bool:
            h = request.headers.get("Authorization", "")
            if not h.startswith("Basic "):
                return False
            # RFC 6749 §2.3.1: each part is form-encoded before Basic.
            user, _, password = (unquote_plus(x) for x in base64.b64decode(h[6:]).decode().partition(":"))
            return secrets.compare_digest(user, self.client_id) and secrets.compare_digest(password, self.secret)

        def error(code: str, status: int = 400):
            return jsonify({"error": code, "error_description": code}), status

        @app.post("/bc-authorize")
        def bc_authorize():
            if self.down:
                return error("temporarily_unavailable", 503)
            if not authenticated():
                return error("invalid_client", 401)
            f = request.form
            if "openid" not in f.get("scope", "").split():
                return error("invalid_scope")
            hint = f.get("login_hint")
            if not hint or hint.startswith("did:key:zUnknown"):
                return error("unknown_user_id")
            rid = secrets.token_urlsafe(32)
            expiry = min(int(f.get("requested_expiry", "120")), 120)
            with self.lock:
                self.requests[rid] = {"login_hint": hint, "binding_message": f.get("binding_message", ""),
                                      "decision": None, "expires": time.time() + expiry, "last_poll": 0.0,
                                      "interval": self.interval, "spent": False}
            return jsonify({"auth_req_id": rid, "expires_in": expiry, "interval": self.interval})

        @app.post("/token")
        def token():
            if self.down:
                return error("temporarily_unavailable", 503)
            if not authenticated():
                return error("invalid_client", 401)
            f = request.form
            if f.get("grant_type") != "urn:openid:params:grant-type:ciba":
                return error("unsupported_grant_type")
            with self.lock:
                r = self.requests.get(f.get("auth_req_id", ""))
                if r is None or r["spent"]:
                    return error("invalid_grant")
                now = time.time()
                if now > r["expires"]:
                    return error("expired_token")
                if now - r["last_poll"] < r["interval"] - 0.2:
                    r["interval"] += 5
                    self.slow_downs += 1
                    return error("slow_down")
                r["last_poll"] = now
                if r["decision"] is None:
                    return error("authorization_pending")
                if r["decision"] == "deny":
                    return error("access_denied", 403)
                r["spent"] = True
                rid = f["auth_req_id"]
            t = jwt.JWT(header={"alg": "ES256", "kid": "op-1"},
                        claims={"iss": self.issuer, "sub": "person:" + r["login_hint"], "aud": self.client_id,
                                "iat": int(now), "exp": int(now) + 300, "auth_time": int(now),
                                "urn:openid:params:jwt:claim:auth_req_id": rid})
            t.make_signed_token(self.key)
            return jsonify({"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "expires_in": 300,
                            "id_token": t.serialize()}), 200, {"Cache-Control": "no-store"}

        self.httpd = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=(cert, key))
        self.port = self.httpd.server_port
        self.issuer = f"https://localhost:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait_for_request(self, timeout: float = 10) -> tuple[str, dict]:
        """The oldest undecided request, once one arrives."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for rid, r in self.requests.items():
                    if r["decision"] is None:
                        return rid, dict(r)
            time.sleep(0.02)
        raise AssertionError("no backchannel authentication request arrived")

    def decide(self, rid: str, decision: str):
        with self.lock:
            self.requests[rid]["decision"] = decision

    def stop(self):
        self.httpd.shutdown()
