"""The CLI's files and tokens against an independent implementation, and a full round trip:
`mandate keygen` → `mandate delegate` → `mandate request` through a running proxy."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest
from jwcrypto import jwk as jwcrypto_jwk
from jwcrypto import jws as jwcrypto_jws

from harness import MANDATE, Proxy, config_text, free_port
from mandate_creds import Key, Party, b64u_decode, chain, kid_for, sha256_b64u


def mandate(*args, check=True) -> subprocess.CompletedProcess:
    r = subprocess.run([MANDATE, *args], capture_output=True, text=True, timeout=60)
    if check:
        assert r.returncode == 0, f"mandate {args[0]}: {r.returncode} {r.stdout} {r.stderr}"
    return r


def keygen(path, alg) -> tuple[str, str]:
    out = mandate("keygen", "--alg", alg, "--out", str(path)).stdout
    fields = dict(line.split(": ", 1) for line in out.splitlines())
    return fields["did"], fields["jkt"]


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    """Principal and agents made by `mandate keygen`; chain files made by `mandate delegate`."""
    d = tmp_path_factory.mktemp("cli")
    alice, alice_jkt = keygen(d / "alice.jwk", "EdDSA")
    a, a_jkt = keygen(d / "agent-a.jwk", "ES256")
    b, b_jkt = keygen(d / "agent-b.jwk", "EdDSA")
    t1 = mandate("delegate", "--key", str(d / "alice.jwk"), "--to", a, "--scope", "echo invoices:read",
                 "--ttl", "1h", "--max-depth", "1").stdout.strip()
    (d / "chain-a.txt").write_text(f"# Alice -> agent A\n{t1}\n")
    t2 = mandate("delegate", "--key", str(d / "agent-a.jwk"), "--to", b, "--scope", "echo", "--ttl", "30m",
                 "--parent", "@" + str(d / "chain-a.txt")).stdout.strip()
    (d / "chain-b.txt").write_text(f"# root first, leaf last\n{t1}\n\n# agent A -> agent B\n{t2}\n")
    return {"dir": d, "alice": alice, "alice_jkt": alice_jkt, "a": a, "a_jkt": a_jkt, "b": b, "b_jkt": b_jkt,
            "t1": t1, "t2": t2}


def test_keygen_writes_private_jwk(cli):
    for name, alg, did, jkt in [("alice.jwk", "OKP", cli["alice"], cli["alice_jkt"]),
                                ("agent-a.jwk", "EC", cli["a"], cli["a_jkt"])]:
        path = cli["dir"] / name
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        j = json.loads(path.read_text())
        assert j["kty"] == alg and "d" in j
        key = Key.from_jwk(j)
        assert key.public_jwk() == {k: v for k, v in j.items() if k != "d"}
        assert key.did_key() == did and key.thumbprint() == jkt


def test_delegate_tokens_verify_with_jwcrypto(cli):
    """Tokens Mandate mints have exactly the shape docs/credentials.md describes."""
    for token, issuer_file, iss, sub, sub_jkt in [(cli["t1"], "alice.jwk", cli["alice"], cli["a"], cli["a_jkt"]),
                                                   (cli["t2"], "agent-a.jwk", cli["a"], cli["b"], cli["b_jkt"])]:
        pub = {k: v for k, v in json.loads((cli["dir"] / issuer_file).read_text()).items() if k != "d"}
        s = jwcrypto_jws.JWS()
        s.deserialize(token)
        s.verify(jwcrypto_jwk.JWK(**pub))
        header = json.loads(b64u_decode(token.split(".")[0]))
        claims = json.loads(s.payload)
        assert header["typ"] == "delegation+jwt" and header["kid"] == kid_for(iss)
        assert claims["iss"] == iss and claims["sub"] == sub and claims["cnf"] == {"jkt": sub_jkt}
        assert isinstance(claims["iat"], int) and isinstance(claims["exp"], int) and claims["jti"]
    assert json.loads(b64u_decode(cli["t2"].split(".")[1]))["prf"] == sha256_b64u(cli["t1"])
    assert "prf" not in json.loads(b64u_decode(cli["t1"].split(".")[1]))


@pytest.fixture(scope="module")
def cli_proxy(cli, upstream):
    if os.environ.get("MANDATE_INTEROP_OFFLINE") == "1":
        pytest.skip("MANDATE_INTEROP_OFFLINE=1")
    port = free_port()
    conf = cli["dir"] / "proxy.conf"
    conf.write_text(config_text(port, upstream.port, {"Alice (CLI)": cli["alice"]}, str(cli["dir"] / "access.log")))
    p = Proxy(str(conf), port, cli["dir"] / "access.log")
    yield p
    p.stop()


def test_request_round_trip(cli, cli_proxy):
    d = cli["dir"]
    r = mandate("request", "--key", str(d / "agent-b.jwk"), "--chain", str(d / "chain-b.txt"),
                f"{cli_proxy.origin}/echo/cli?q=1")
    echo = json.loads(r.stdout)
    headers = {k.lower(): v for k, v in echo["headers"]}
    assert echo["path"] == "/echo/cli?q=1"
    assert headers["mandate-principal"] == cli["alice"]
    assert headers["mandate-agent"] == cli["b"]
    assert headers["mandate-chain"] == f"{cli['alice']},{cli['a']},{cli['b']}"
    assert headers["mandate-scope"] == "echo"
    assert "authorization" not in headers and "dpop" not in headers and "agent-delegation" not in headers


def test_request_posts_body(cli, cli_proxy):
    d = cli["dir"]
    r = mandate("request", "-X", "POST", "-d", '{"amount":1}', "--key", str(d / "agent-a.jwk"),
                "--chain", str(d / "chain-a.txt"), f"{cli_proxy.origin}/echo/post")
    echo = json.loads(r.stdout)
    assert echo["method"] == "POST" and echo["body_length"] == len('{"amount":1}')


def test_request_reports_refusal(cli, cli_proxy):
    d = cli["dir"]
    r = mandate("request", "-i", "--key", str(d / "agent-b.jwk"), "--chain", str(d / "chain-b.txt"),
                f"{cli_proxy.origin}/invoices/1", check=False)
    assert r.returncode == 22, r
    out = r.stdout + r.stderr
    assert "403" in out and "insufficient_scope" in out


def test_request_with_python_key_and_chain_files(ids, proxy, tmp_path):
    """`mandate request` reads a key file and a chain file written from the doc alone."""
    a, b = Party.of(Key.p256()), Party.of(Key.ed25519())
    c = chain(ids.alice, [a, b], ["echo", "echo"])
    (tmp_path / "b.jwk").write_text(json.dumps(b.key.private_jwk()))
    (tmp_path / "chain.txt").write_text("# from Python\n" + "\n".join(c.tokens) + "\n")
    r = mandate("request", "--key", str(tmp_path / "b.jwk"), "--chain", str(tmp_path / "chain.txt"),
                f"{proxy.origin}/echo/py")
    headers = {k.lower(): v for k, v in json.loads(r.stdout)["headers"]}
    assert headers["mandate-chain"] == f"{ids.alice.did},{a.did},{b.did}"


def test_cli_chain_explained_offline(cli, tmp_path):
    conf = tmp_path / "explain.conf"
    conf.write_text(config_text(8080, 9000, {"Alice (CLI)": cli["alice"]}, "off"))
    bkey = Key.from_jwk(json.loads((cli["dir"] / "agent-b.jwk").read_text()))
    from mandate_creds import Chain
    h = Chain([cli["t1"], cli["t2"]], bkey).headers("GET", "http://127.0.0.1:8080/echo/x")
    args = ["explain", "--config", str(conf)]
    for k, v in h.items():
        args += ["-H", f"{k}: {v}"]
    r = mandate(*args, "/echo/x")
    assert r.stdout.startswith("forward /echo/x")


def test_request_prints_headers_that_explain_reads(cli, tmp_path):
    """`request --print-headers` signs without sending; `explain --headers -` takes its output."""
    conf = tmp_path / "explain.conf"
    conf.write_text(config_text(8080, 9000, {"Alice (CLI)": cli["alice"]}, "off"))
    d = cli["dir"]
    printed = mandate("request", "--print-headers", "--key", str(d / "agent-b.jwk"), "--chain", str(d / "chain-b.txt"),
                      "http://127.0.0.1:8080/echo/x").stdout
    names = [line.split(":", 1)[0] for line in printed.splitlines()]
    assert names == ["Authorization", "DPoP", "Agent-Delegation"]
    r = subprocess.run([MANDATE, "explain", "--config", str(conf), "--headers", "-", "/echo/x"], input=printed,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("forward /echo/x")
    assert f"Mandate-Agent: {cli['b']}" in r.stdout
    # A malformed line is named by file and line.
    bad = tmp_path / "bad.txt"
    bad.write_text(printed + "not a field\n")
    r = subprocess.run([MANDATE, "explain", "--config", str(conf), "--headers", str(bad), "/echo/x"],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert f"{bad}:4:" in r.stderr


@pytest.mark.parametrize("command", ["serve", "request", "explain", "delegate", "loadgen"])
def test_command_help_names_that_commands_options(command):
    r = mandate(command, "--help")
    assert r.stdout.startswith(f"usage: mandate {command} ")
    assert "usage: mandate <command>" not in r.stdout


def test_demo_help_names_every_port_option():
    # A port that is taken is refused with "try --approval-port": the help must name it too.
    r = mandate("demo", "--help")
    for option in ["--dir", "--port", "--upstream-port", "--approval-port"]:
        assert option in r.stdout, r.stdout
