"""A real OAuth 2.0 authorization server for the interop tests, built on Authlib: its
AuthorizationServer (client credentials, client_secret_basic) issues RFC 9068 JWT access tokens
with Authlib's JWTBearerTokenGenerator, and serves RFC 8414 metadata and the JWKS, over HTTPS.

Test-only policy hooks, in the token request's form: `on_behalf_of` (the human `sub`) and
`actors` (comma-separated, outermost last: RFC 8693 `act`). A `DPoP` header binds the token to
the proof's key (cnf.jkt); the AS does not check that proof (the proxy is what is under test).

`/token-opaque` issues opaque tokens (a second Authlib AuthorizationServer with its default
generator), and `/introspect` is Authlib's RFC 7662 IntrospectionEndpoint for them, open to the
client `mandate-rs` (client_secret_basic).
"""

from __future__ import annotations

import json
import threading
import time

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.jose import JsonWebKey
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from mandate_creds import b64u_decode


class Client(ClientMixin):
    def __init__(self, client_id: str, secret: str):
        self.client_id, self.secret = client_id, secret

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return None

    def get_allowed_scope(self, scope):
        return scope or ""

    def check_redirect_uri(self, redirect_uri):
        return False

    def check_client_secret(self, client_secret):
        return client_secret == self.secret

    def check_endpoint_auth_method(self, method, endpoint):
        return method == "client_secret_basic"

    def check_response_type(self, response_type):
        return False

    def check_grant_type(self, grant_type):
        return grant_type == "client_credentials"


class Issued(dict):
    """An opaque token's introspection answer, with what Authlib asks of a token."""

    def is_expired(self):
        return self["exp"] <= time.time()

    def is_revoked(self):
        return False


class AuthServer:
    def __init__(self, cert: str, key: str, audience: str, alg: str = "ES256"):
        self.port = 0
        self.audience = audience
        self.alg = alg
        self.signing = [self.new_key("k1")]      # private keys Authlib signs with
        self.published = list(self.signing)      # what /jwks shows
        self.jwks_status = 200
        self.jwks_hits = 0
        self.lock = threading.Lock()
        self.clients = {"agent-app": Client("agent-app", "s3cret"), "mandate-rs": Client("mandate-rs", "rs p@ss&word")}
        self.opaque: dict[str, dict] = {}   # access_token → what introspection says
        self.introspections = 0
        app = Flask("mandate-test-as")
        outer = self

        class Generator(JWTBearerTokenGenerator):
            def get_jwks(self):
                return {"keys": [k.as_dict(is_private=True) for k in outer.signing]}

            def get_audiences(self, client, user, scope):
                return outer.audience

            def get_extra_claims(self, client, grant_type, user, scope):
                extra = {}
                if request.form.get("on_behalf_of"):
                    extra["sub"] = request.form["on_behalf_of"]
                act = None
                for who in (request.form.get("actors") or "").split(","):
                    if who:
                        act = {"sub": who, **({"act": act} if act else {})}
                if act:
                    extra["act"] = act
                proof = request.headers.get("DPoP")
                if proof:
                    jwk = json.loads(b64u_decode(proof.split(".")[0]))["jwk"]
                    extra["cnf"] = {"jkt": JsonWebKey.import_key(jwk).thumbprint()}
                return extra

        self.server = AuthorizationServer(app, query_client=lambda cid: self.clients.get(cid),
                                          save_token=lambda token, req: None)
        self.server.register_grant(grants.ClientCredentialsGrant)
        self.generator = None

        @app.post("/token")
        def token():
            return self.server.create_token_response()

        def keep(token, req):
            extra = Generator(issuer="").get_extra_claims(req.client, "client_credentials", None, token.get("scope"))
            now = int(time.time())
            self.opaque[token["access_token"]] = Issued({
                "active": True, "iss": self.issuer, "aud": self.audience, "client_id": req.client.get_client_id(),
                "sub": extra.pop("sub", req.client.get_client_id()), "scope": token.get("scope", ""), "iat": now,
                "exp": now + int(token.get("expires_in", 3600)), "token_type": "Bearer", **extra})

        self.opaque_server = AuthorizationServer(app, query_client=lambda cid: self.clients.get(cid), save_token=keep)
        self.opaque_server.register_grant(grants.ClientCredentialsGrant)

        class Introspect(IntrospectionEndpoint):
            CLIENT_AUTH_METHODS = ["client_secret_basic"]

            def query_token(self, token_string, token_type_hint):
                return outer.opaque.get(token_string)

            def introspect_token(self, token):
                return dict(token)

            def check_permission(self, token, client, request):
                return client.client_id == "mandate-rs"

        self.opaque_server.register_endpoint(Introspect)

        @app.post("/token-opaque")
        def token_opaque():
            return self.opaque_server.create_token_response()

        @app.post("/introspect")
        def introspect():
            with self.lock:
                self.introspections += 1
            return self.opaque_server.create_endpoint_response("introspection")

        @app.get("/.well-known/oauth-authorization-server")
        def metadata():
            return jsonify({"issuer": self.issuer, "token_endpoint": self.issuer + "/token",
                            "jwks_uri": self.issuer + "/jwks", "grant_types_supported": ["client_credentials"],
                            "dpop_signing_alg_values_supported": ["ES256", "EdDSA"]})

        @app.get("/jwks")
        def jwks():
            with self.lock:
                self.jwks_hits += 1
                status = self.jwks_status
            return jsonify({"keys": [k.as_dict(is_private=False) for k in self.published]}), status

        self.httpd = make_server("127.0.0.1", 0, app, threaded=True, ssl_context=(cert, key))
        self.port = self.httpd.server_port
        self.issuer = f"https://localhost:{self.port}"
        self.server.register_token_generator("default", Generator(issuer=self.issuer, alg=alg))
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def new_key(self, kid: str):
        if self.alg == "RS256":
            return JsonWebKey.generate_key("RSA", 2048, is_private=True, options={"kid": kid})
        # Authlib drops a leading zero byte of x or y (about 1 key in 100), which RFC 7518
        # §6.2.1.2 forbids and Mandate (like PyJWT) refuses: keep the keys it encodes right.
        while True:
            k = JsonWebKey.generate_key("EC", "P-256", is_private=True, options={"kid": kid})
            pub = k.as_dict(is_private=False)
            if all(len(pub[c]) == 43 for c in ("x", "y")):
                return k

    def rotate(self, kid: str):
        """A new signing key, published beside the old one."""
        k = self.new_key(kid)
        self.published = self.published + [k]
        self.signing = [k]

    def stop(self):
        self.httpd.shutdown()
