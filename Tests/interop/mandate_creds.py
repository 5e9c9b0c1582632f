"""Mints Mandate credentials from docs/credentials.md alone, with `cryptography`.

Nothing here calls Mandate: this module is the outsider's implementation that the interop
suite checks the Swift verifier against.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

# --- encodings ----------------------------------------------------------------------------


def b64u(data: bytes) -> str:
    """base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58btc(data: bytes) -> str:
    """Bitcoin base58: big-endian base-58 digits, one '1' per leading zero byte."""
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + out


def compact_json(obj) -> bytes:
    """JSON without whitespace, members in the given order."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_b64u(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("ascii")
    return b64u(hashlib.sha256(data).digest())


# --- keys ---------------------------------------------------------------------------------


@dataclass
class Key:
    """An Ed25519 (alg EdDSA) or P-256 (alg ES256) private key."""

    private: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey

    @staticmethod
    def ed25519(seed: bytes | None = None) -> "Key":
        seed = seed if seed is not None else os.urandom(32)
        return Key(ed25519.Ed25519PrivateKey.from_private_bytes(seed))

    @staticmethod
    def p256(d: int | None = None) -> "Key":
        if d is None:
            return Key(ec.generate_private_key(ec.SECP256R1()))
        return Key(ec.derive_private_key(d, ec.SECP256R1()))

    @staticmethod
    def from_jwk(jwk: dict) -> "Key":
        d = b64u_decode(jwk["d"])
        if jwk["kty"] == "OKP":
            return Key.ed25519(d)
        return Key.p256(int.from_bytes(d, "big"))

    @property
    def alg(self) -> str:
        return "EdDSA" if isinstance(self.private, ed25519.Ed25519PrivateKey) else "ES256"

    def _raw_public(self) -> bytes:
        return self.private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def public_jwk(self) -> dict:
        if self.alg == "EdDSA":
            return {"kty": "OKP", "crv": "Ed25519", "x": b64u(self._raw_public())}
        n = self.private.public_key().public_numbers()
        return {"kty": "EC", "crv": "P-256", "x": b64u(n.x.to_bytes(32, "big")), "y": b64u(n.y.to_bytes(32, "big"))}

    def private_jwk(self) -> dict:
        """The key file of `mandate keygen`: the public JWK plus d (seed, or scalar as 32 bytes)."""
        if self.alg == "EdDSA":
            d = self.private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                           serialization.NoEncryption())
        else:
            d = self.private.private_numbers().private_value.to_bytes(32, "big")
        return {**self.public_jwk(), "d": b64u(d)}

    def thumbprint(self) -> str:
        """RFC 7638: SHA-256 of the required members, sorted, no whitespace."""
        j = self.public_jwk()
        members = ["crv", "kty", "x"] if j["kty"] == "OKP" else ["crv", "kty", "x", "y"]
        return sha256_b64u(compact_json({m: j[m] for m in members}))

    def did_key(self) -> str:
        if self.alg == "EdDSA":
            return "did:key:z" + base58btc(bytes([0xED, 0x01]) + self._raw_public())
        point = self.private.public_key().public_bytes(serialization.Encoding.X962,
                                                       serialization.PublicFormat.CompressedPoint)
        return "did:key:z" + base58btc(bytes([0x80, 0x24]) + point)

    def did_jwk(self) -> str:
        return "did:jwk:" + b64u(compact_json(self.public_jwk()))

    def sign(self, data: bytes) -> bytes:
        if self.alg == "EdDSA":
            return self.private.sign(data)
        # RFC 7518 §3.4: r and s as 32-byte big-endian integers; RFC 6979 so examples reproduce.
        der = self.private.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def kid_for(did: str) -> str:
    """The issuer's verification method: did:key:X#X, or did:jwk:Y#0."""
    if did.startswith("did:key:"):
        return did + "#" + did[len("did:key:"):]
    return did + "#0"


@dataclass
class Party:
    """Someone who signs: a key and the DID that names it."""

    key: Key
    did: str

    @staticmethod
    def of(key: Key, method: str = "key") -> "Party":
        return Party(key, key.did_key() if method == "key" else key.did_jwk())


# --- JWS ----------------------------------------------------------------------------------


def jws(header: dict | bytes, claims: dict | bytes, key: Key | None, signature: bytes | None = None) -> str:
    """RFC 7515 §7.1 compact serialization. bytes for header/claims are used verbatim."""
    h = header if isinstance(header, bytes) else compact_json(header)
    c = claims if isinstance(claims, bytes) else compact_json(claims)
    signing_input = b64u(h) + "." + b64u(c)
    sig = signature if signature is not None else key.sign(signing_input.encode("ascii"))
    return signing_input + "." + b64u(sig)


def delegation(issuer: Party, subject_did: str, jkt: str, scope: str, *, now: int | None = None,
               ttl: int = 3600, parent: str | None = None, jti: str | None = None, drop: tuple = (),
               **extra) -> str:
    """One link. `extra` adds or overrides claims (None removes one), `drop` removes claims,
    `header_extra` adds or overrides header parameters, `signer` signs instead of the issuer.
    Below a parent, the clock defaults to the parent's iat, so a child never outlives it by a tick."""
    if now is None:
        now = json.loads(b64u_decode(parent.split(".")[1]))["iat"] if parent else int(time.time())
    header = {"alg": issuer.key.alg, "typ": "delegation+jwt", "kid": kid_for(issuer.did)}
    header.update(extra.pop("header_extra", {}))
    claims = {"iss": issuer.did, "sub": subject_did, "cnf": {"jkt": jkt}, "scope": scope,
              "iat": now, "exp": now + ttl, "jti": jti or b64u(os.urandom(16))}
    if parent is not None:
        claims["prf"] = sha256_b64u(parent)
    signer = extra.pop("signer", issuer.key)
    for k, v in extra.items():
        if v is None:
            claims.pop(k, None)
        else:
            claims[k] = v
    for k in drop:
        claims.pop(k, None)
    return jws({k: v for k, v in header.items() if v is not None}, claims, signer)


def proof(key: Key, method: str, htu: str, access_token: str, *, now: int | None = None,
          jti: str | None = None, header_extra: dict | None = None, **extra) -> str:
    """RFC 9449 §4.2 DPoP proof; `extra` adds or overrides claims (None removes one)."""
    now = int(time.time()) if now is None else now
    header = {"typ": "dpop+jwt", "alg": key.alg, "jwk": key.public_jwk()}
    header.update(header_extra or {})
    claims = {"jti": jti or b64u(os.urandom(16)), "htm": method, "htu": htu, "iat": now,
              "ath": sha256_b64u(access_token)}
    for k, v in extra.items():
        if v is None:
            claims.pop(k, None)
        else:
            claims[k] = v
    return jws({k: v for k, v in header.items() if v is not None}, claims, key)


@dataclass
class Chain:
    """Tokens root first; `holder` is the leaf's delegate, whose key signs proofs."""

    tokens: list[str]
    holder: Key

    @property
    def leaf(self) -> str:
        return self.tokens[-1]

    def headers(self, method: str, htu: str, **proof_args) -> dict[str, str]:
        h = {"Authorization": "DPoP " + self.leaf,
             "DPoP": proof(self.holder, method, htu, self.leaf, **proof_args)}
        if len(self.tokens) > 1:
            h["Agent-Delegation"] = ", ".join(self.tokens[:-1])
        return h


def chain(principal: Party, agents: list[Party], scopes: list[str], *, ttl: int = 3600,
          now: int | None = None) -> Chain:
    """principal → agents[0] → agents[1] …, link i granting scopes[i]; one clock for all links,
    so that no child outlives its parent."""
    now = int(time.time()) if now is None else now
    tokens: list[str] = []
    issuer = principal
    for agent, scope in zip(agents, scopes):
        tokens.append(delegation(issuer, agent.did, agent.key.thumbprint(), scope, now=now, ttl=ttl,
                                 parent=tokens[-1] if tokens else None))
        issuer = agent
    return Chain(tokens, agents[-1].key)
