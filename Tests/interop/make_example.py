#!/usr/bin/env python3
"""The worked example of docs/credentials.md, minted from that page alone.

    make_example.py               print the example (fixed keys, fixed clock) as Markdown
    make_example.py --write-doc   replace the example section of docs/credentials.md
    make_example.py --check-doc   exit 1 when the doc's example is not what this prints
    make_example.py --verify      mint the same chain at the current clock and ask
                                  `mandate explain` (MANDATE_BIN or --mandate) for the decision

Ed25519 and RFC 6979 ECDSA are deterministic, so the fixed-clock output never changes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mandate_creds import Key, Party, b64u_decode, delegation, kid_for, proof, sha256_b64u  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "credentials.md"
BEGIN, END = "<!-- example:begin (Tests/interop/make_example.py --write-doc) -->", "<!-- example:end -->"

FIXED_NOW = 1767225600  # 2026-01-01T00:00:00Z
ORIGIN = "https://api.example.com"
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def seed(label: str) -> bytes:
    return hashlib.sha256(b"mandate example " + label.encode()).digest()


ALICE = Party.of(Key.ed25519(seed("alice")))
AGENT_A = Party.of(Key.p256(int.from_bytes(seed("agent A"), "big") % P256_N))
AGENT_B = Party.of(Key.ed25519(seed("agent B")), method="jwk")


def config_text(origin: str = ORIGIN) -> str:
    return (f"public_origin {origin};\n"
            "upstream http://127.0.0.1:9000;\n"
            f"principal {ALICE.did} {{ name \"Alice\"; }}\n"
            "route /invoices/ { methods GET; scope invoices:read; effect allow; }\n")


def mint(now: int) -> dict:
    link1 = delegation(ALICE, AGENT_A.did, AGENT_A.key.thumbprint(), "invoices:read invoices:write",
                       now=now, ttl=8 * 3600, jti="link-1-example", max_depth=1)
    link2 = delegation(AGENT_A, AGENT_B.did, AGENT_B.key.thumbprint(), "invoices:read",
                       now=now, ttl=3600, parent=link1, jti="link-2-example")
    dpop = proof(AGENT_B.key, "GET", ORIGIN + "/invoices/42", link2, now=now, jti="proof-example-1")
    return {"link1": link1, "link2": link2, "proof": dpop,
            "headers": {"Authorization": "DPoP " + link2, "DPoP": dpop, "Agent-Delegation": link1}}


def decoded(token: str) -> str:
    h, c, _ = token.split(".")
    return ("header: " + b64u_decode(h).decode() + "\nclaims: " + b64u_decode(c).decode())


def markdown(now: int = FIXED_NOW) -> str:
    m = mint(now)
    out = [BEGIN, "", f"Clock: `now = {now}` (2026-01-01T00:00:00Z). Public origin `{ORIGIN}`.", "",
           "Private keys (key files as `mandate keygen` writes them):", "", "```"]
    for name, p in [("alice.jwk  ", ALICE), ("agent-a.jwk", AGENT_A), ("agent-b.jwk", AGENT_B)]:
        out.append(f"{name} {json.dumps(p.key.private_jwk(), separators=(',', ':'))}")
    out += ["```", "", "Identities:", "", "| who | alg | DID | RFC 7638 thumbprint |", "| --- | --- | --- | --- |"]
    for name, p in [("Alice (principal)", ALICE), ("agent A", AGENT_A), ("agent B", AGENT_B)]:
        out.append(f"| {name} | {p.key.alg} | `{p.did}` | `{p.key.thumbprint()}` |")
    out += ["", "Thumbprint inputs:", "", "```"]
    for p in (AGENT_A, AGENT_B):
        j = p.key.public_jwk()
        members = ["crv", "kty", "x"] + (["y"] if j["kty"] == "EC" else [])
        out.append(json.dumps({k: j[k] for k in members}, separators=(",", ":")))
    out += ["```", "", "Config (`example.conf`):", "", "```nginx", config_text().rstrip(), "```", "",
            "Link 1, Alice → agent A (root, EdDSA; no `prf`):", "", "```", decoded(m["link1"]), "",
            m["link1"], "```", "",
            f"Link 2, agent A → agent B (leaf, ES256, kid `{kid_for(AGENT_A.did)}`; "
            f"`prf` = base64url(SHA-256(link 1)) = `{sha256_b64u(m['link1'])}`):", "", "```",
            decoded(m["link2"]), "", m["link2"], "```", "",
            f"DPoP proof by agent B for `GET {ORIGIN}/invoices/42` "
            f"(`ath` = base64url(SHA-256(link 2)) = `{sha256_b64u(m['link2'])}`):", "", "```",
            decoded(m["proof"]), "", m["proof"], "```", "", "The request:", "", "```http",
            "GET /invoices/42 HTTP/1.1", "Host: api.example.com"]
    out += [f"{k}: {v}" for k, v in m["headers"].items()]
    out += ["```", "", "What the upstream receives in place of the three credential headers:", "", "```",
            f"Mandate-Principal: {ALICE.did}", f"Mandate-Agent: {AGENT_B.did}",
            f"Mandate-Chain: {ALICE.did},{AGENT_A.did},{AGENT_B.did}", "Mandate-Scope: invoices:read",
            "Mandate-Request-Id: <the proxy's id for this request>", "```", "", END]
    return "\n".join(out)


def verify(mandate: str) -> int:
    import time
    m = mint(int(time.time()))
    with tempfile.TemporaryDirectory() as d:
        conf = os.path.join(d, "example.conf")
        Path(conf).write_text(config_text())
        cmd = [mandate, "explain", "--config", conf, "-X", "GET"]
        for k, v in m["headers"].items():
            cmd += ["-H", f"{k}: {v}"]
        r = subprocess.run(cmd + ["/invoices/42"], capture_output=True, text=True)
    sys.stdout.write(r.stdout + r.stderr)
    return 0 if r.returncode == 0 and r.stdout.startswith("forward ") else 1


def main() -> int:
    a = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--write-doc", action="store_true")
    a.add_argument("--check-doc", action="store_true")
    a.add_argument("--verify", action="store_true")
    a.add_argument("--mandate", default=os.environ.get("MANDATE_BIN", str(ROOT / ".build/debug/mandate")))
    args = a.parse_args()
    if args.verify:
        return verify(args.mandate)
    text = markdown()
    if args.write_doc or args.check_doc:
        doc = DOC.read_text()
        start, end = doc.index(BEGIN), doc.index(END) + len(END)
        if args.check_doc:
            return 0 if doc[start:end] == text else 1
        DOC.write_text(doc[:start] + text + doc[end:])
        return 0
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
