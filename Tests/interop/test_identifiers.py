"""The identifiers of docs/credentials.md §2 against published vectors and jwcrypto, and the
worked example against the doc and the binary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from jwcrypto import jwk as jwcrypto_jwk

from harness import MANDATE, ROOT
from mandate_creds import Key, base58btc, compact_json, sha256_b64u

# ../shared/vectors beside the repository, else the copy in Tests/vectors.
VECTORS = next(p for p in (ROOT.parent / "shared" / "vectors", ROOT / "Tests" / "vectors") if p.exists())
EXAMPLE = Path(__file__).with_name("make_example.py")


def vectors(name: str) -> dict:
    return json.loads((VECTORS / name).read_text())


def test_base58btc_leading_zeros():
    assert base58btc(b"\0\0\x01") == "112"
    assert base58btc(b"hello world") == "StV1DL6CwTryKyV"


def test_did_key_ed25519_vectors():
    for v in vectors("did.json")["did_key_ed25519"]:
        if "seed_hex" in v:
            assert Key.ed25519(bytes.fromhex(v["seed_hex"])).did_key() == v["did"]
        if "public_key_hex" in v:
            assert "did:key:z" + base58btc(bytes.fromhex("ed01" + v["public_key_hex"])) == v["did"]


def test_p256_did_key_prefix_and_did_jwk():
    k = Key.p256()
    assert k.did_key().startswith("did:key:zDn")
    v = vectors("did.json")["did_jwk_p256"]
    jwk = {"crv": "P-256", "kty": "EC", "x": v["x"], "y": v["y"]}
    from mandate_creds import b64u
    assert "did:jwk:" + b64u(compact_json(jwk)) == v["did"]


def test_thumbprint_of_rfc9449_key():
    v = vectors("dpop.json")
    j = v["jwk"]
    members = {m: j[m] for m in ["crv", "kty", "x", "y"]}
    assert sha256_b64u(compact_json(members)) == v["expected_jkt"]


@pytest.mark.parametrize("make", [Key.ed25519, Key.p256])
def test_thumbprint_matches_jwcrypto(make):
    k = make()
    assert k.thumbprint() == jwcrypto_jwk.JWK(**k.public_jwk()).thumbprint()


def test_doc_example_is_current():
    r = subprocess.run([sys.executable, str(EXAMPLE), "--check-doc"])
    assert r.returncode == 0, "docs/credentials.md example is stale: run Tests/interop/make_example.py --write-doc"


def test_doc_example_verifies_with_binary():
    r = subprocess.run([sys.executable, str(EXAMPLE), "--verify", "--mandate", MANDATE], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("forward /invoices/42"), r.stdout + r.stderr
