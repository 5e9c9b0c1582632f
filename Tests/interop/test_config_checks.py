"""What a new user ran into (a README trial), each now caught early with a clear message."""

from __future__ import annotations

import json
import subprocess

import pytest

from harness import MANDATE
from test_did_web import DIDServer, WebProxy, web_party, dids  # noqa: F401 (fixtures)
from mandate_creds import Key, b64u_decode

BASE = "upstream http://127.0.0.1:9;\npublic_origin https://a.example;\n"


def mandate(*args):
    return subprocess.run([MANDATE, *args], capture_output=True, text=True, timeout=60)


def check(tmp_path, text: str):
    conf = tmp_path / "p.conf"
    conf.write_text(BASE + text)
    return conf, mandate("serve", "--config", str(conf), "--check")


def test_check_loads_every_file_it_names(tmp_path):
    conf, r = check(tmp_path, "did_web { ca nope.pem; }\n")
    assert r.returncode == 1 and f"did_web ca {tmp_path / 'nope.pem'}: No such file or directory" in r.stderr, r.stderr
    (tmp_path / "junk.pem").write_text("junk\n")
    conf, r = check(tmp_path, "oauth_issuer https://as.example { ca junk.pem; }\n")
    assert r.returncode == 1 and "oauth_issuer https://as.example ca" in r.stderr and "not a PEM CA bundle" in r.stderr, r.stderr
    conf, r = check(tmp_path, "listen 127.0.0.1:0 tls { certificate nope.pem; key nope.key; }\n")
    assert r.returncode == 1 and f"{conf}:3: tls: certificate {tmp_path / 'nope.pem'}: No such file or directory" in r.stderr, r.stderr


def test_txn_token_key_errors_name_the_config(tmp_path):
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    conf, r = check(tmp_path, "txn_token { keys ca.pem; trust_domain https://t.example; }\n")
    assert r.returncode == 1, r.stderr
    assert f"{conf}: txn_token keys: {tmp_path / 'ca.pem'}: not a JWK (a JSON object, as mandate keygen writes)" in r.stderr, r.stderr
    conf, r = check(tmp_path, "txn_token { keys gone.jwk; trust_domain https://t.example; }\n")
    assert "txn_token keys:" in r.stderr and "No such file or directory" in r.stderr, r.stderr


def test_no_false_warnings(tmp_path):
    conf, r = check(tmp_path, "oauth_issuer https://as.example;\nroute / { effect allow; }\n")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    assert "ok (0 principals, 1 OAuth issuer, 1 route)" in r.stdout, r.stdout
    conf, r = check(tmp_path, "route / { effect allow; allow_bearer on; }\n")
    assert "allow_bearer has no effect without an oauth_issuer" in r.stderr, r.stderr


def test_request_reports_local_files_as_usage_errors(tmp_path):
    (tmp_path / "chain.txt").write_text("x.y.z\n")
    r = mandate("request", "--cacert", str(tmp_path / "nope.pem"), "--key", str(tmp_path / "k.jwk"),
                "--chain", str(tmp_path / "chain.txt"), "https://127.0.0.1:9/x")
    assert r.returncode == 2 and "nope.pem: cannot read (No such file or directory)" in r.stderr, r.stderr


def test_cli_mints_an_organizations_root_for_its_person(tmp_path, upstream, dids, ids):
    """mandate delegate --issuer/--kid/--principal: a did:web partner's root, with no hand-made JWS."""
    partner_key = Key.ed25519()
    (tmp_path / "partner.jwk").write_text(json.dumps(partner_key.private_jwk()))
    partner = web_party(dids, "cli-partner", key=partner_key)
    agent = ids.agent()
    r = mandate("delegate", "--key", str(tmp_path / "partner.jwk"), "--issuer", partner.did, "--kid", partner.did + "#key-1",
                "--principal", "bob@partner.example", "--to", agent.did, "--scope", "echo", "--ttl", "10m")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    header = json.loads(b64u_decode(token.split(".")[0]))
    claims = json.loads(b64u_decode(token.split(".")[1]))
    assert header["kid"] == partner.did + "#key-1"
    assert claims["iss"] == partner.did and claims["principal"] == {"sub": "bob@partner.example"}
    block = (f"did_web {{ ca {dids.ca_file}; allow_private_addresses on; }}\n"
             f'organization {partner.did} {{ name "Partner"; principals *@partner.example; max_scope echo; }}\n')
    p = WebProxy(tmp_path, upstream.port, {"Alice": ids.alice.did}, block)
    try:
        from mandate_creds import Chain
        from harness import assert_forwarded
        up = assert_forwarded(p.send(Chain([token], agent.key)))
        assert up["mandate-principal"] == ["bob@partner.example"] and up["mandate-organization"] == [partner.did]
    finally:
        p.stop()
    # The options that would make a token the proxy refuses are refused here.
    r = mandate("delegate", "--key", str(tmp_path / "partner.jwk"), "--issuer", partner.did, "--to", agent.did,
                "--scope", "echo", "--ttl", "10m")
    assert r.returncode == 2 and "--issuer needs --kid" in r.stderr, r.stderr
    r = mandate("delegate", "--key", str(tmp_path / "partner.jwk"), "--principal", "did:key:z6Mk", "--to", agent.did,
                "--scope", "echo", "--ttl", "10m")
    assert r.returncode == 2 and "--principal is an identifier" in r.stderr, r.stderr


def test_an_admin_token_others_can_read_is_warned_about(tmp_path, upstream):
    import os
    import time

    from harness import Proxy, config_text, free_port

    token = tmp_path / "admin.token"
    token.write_text("a" * 40 + "\n")
    for mode, warned in [(0o644, True), (0o600, False)]:
        os.chmod(token, mode)
        port = free_port()
        conf = tmp_path / f"p{mode:o}.conf"
        conf.write_text(config_text(port, upstream.port, {}, "off",
                                    f"admin_listen 127.0.0.1:{free_port()};\nadmin_token_file admin.token;\n"))
        p = Proxy(str(conf), port, tmp_path / f"p{mode:o}.log")
        time.sleep(0.2)
        out = p.output()
        p.stop()
        assert ("can be read by others (mode 644); chmod 600 it" in out) == warned, out
