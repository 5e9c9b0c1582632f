"""The audit trail the real proxy writes: one hash-chained record per decision, signed
checkpoints, continued across restarts and rotation; `mandate audit verify` names the first bad
record after an edit, a deletion, an insertion or a reordering."""

from __future__ import annotations

import http.client
import json
import subprocess
from pathlib import Path

import pytest

from conftest import OFFLINE
from harness import MANDATE, Proxy, assert_forwarded, config_text, free_port, outcome_from_response
from mandate_creds import chain

pytestmark = pytest.mark.skipif(OFFLINE, reason="MANDATE_INTEROP_OFFLINE=1")


def mandate(*args):
    return subprocess.run([MANDATE, *args], capture_output=True, text=True, timeout=60)


class AuditedProxy:
    def __init__(self, d: Path, upstream_port: int, principals: dict, extra: str = ""):
        self.dir, self.port = d, free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        conf = d / "proxy.conf"
        conf.write_text(config_text(self.port, upstream_port, principals, "off",
                                    f"audit {{ file audit.jsonl; key audit.jwk; checkpoint_every 3; {extra} }}\n"))
        self.proxy = Proxy(str(conf), self.port, d / "proxy.log")

    def send(self, headers: dict, path="/echo/x"):
        return self.proxy.send("GET", path, headers)


def records(path: Path) -> list[dict]:
    return [json.loads(l) for l in path.read_text().splitlines()]


def test_every_decision_is_recorded_and_the_trail_verifies(tmp_path, upstream, ids):
    assert mandate("keygen", "--alg", "EdDSA", "--out", str(tmp_path / "audit.jwk")).returncode == 0
    public = {k: v for k, v in json.loads((tmp_path / "audit.jwk").read_text()).items() if k != "d"}
    (tmp_path / "audit.pub.jwk").write_text(json.dumps(public))
    agent = ids.agent()
    c = chain(ids.alice, [agent], ["echo"])
    p = AuditedProxy(tmp_path, upstream.port, {"Alice": ids.alice.did})
    try:
        for i in range(4):
            assert_forwarded(p.send(c.headers("GET", p.origin + f"/echo/{i}"), f"/echo/{i}"))
        assert p.send({}).status == 401
    finally:
        p.proxy.stop()  # SIGTERM: a last signed checkpoint
    trail = tmp_path / "audit.jsonl"
    rs = records(trail)
    decisions = [r for r in rs if "checkpoint" not in r]
    assert len(decisions) == 5 and [r["seq"] for r in rs] == list(range(1, len(rs) + 1))
    fwd = decisions[0]
    assert fwd["decision"] == "forward" and fwd["status"] == 200 and fwd["upstream_status"] == 200
    assert fwd["principal"] == ids.alice.did and fwd["agent"] == agent.did and fwd["proof"] == "dpop"
    assert fwd["chain"] == [ids.alice.did, agent.did]
    assert fwd["jtis"] == [json.loads(__import__("base64").urlsafe_b64decode(c.leaf.split(".")[1] + "=="))["jti"]]
    assert fwd["route"] == "/echo/" and fwd["approval"] is None
    refused = decisions[-1]
    assert refused["decision"] == "refuse" and refused["reason"] == "missing_credential" and refused["upstream_status"] is None
    assert rs[-1]["checkpoint"] and "sig" in rs[-1]
    r = mandate("audit", "verify", "--key", str(tmp_path / "audit.pub.jwk"), str(trail))
    assert r.returncode == 0 and "with good signatures" in r.stdout, r.stdout + r.stderr

    # A restart continues the chain.
    p = AuditedProxy(tmp_path, upstream.port, {"Alice": ids.alice.did})
    try:
        assert_forwarded(p.send(c.headers("GET", p.origin + "/echo/again"), "/echo/again"))
    finally:
        p.proxy.stop()
    r = mandate("audit", "verify", "--key", str(tmp_path / "audit.pub.jwk"), str(trail))
    assert r.returncode == 0, r.stdout

    # audit show: one agent's records.
    shown = mandate("audit", "show", "--agent", agent.did, str(trail)).stdout.splitlines()
    assert len(shown) == 5 and all(json.loads(l)["agent"] == agent.did for l in shown)

    # Tampering, each kind named at its first bad record.
    lines = trail.read_text().splitlines()

    def verify(tampered: list[str]):
        t = tmp_path / "tampered.jsonl"
        t.write_text("\n".join(tampered) + "\n")
        return mandate("audit", "verify", "--key", str(tmp_path / "audit.pub.jwk"), str(t))

    edited = list(lines)
    edited[1] = edited[1].replace('"status":200', '"status":201')
    r = verify(edited)
    assert r.returncode == 1 and ":2: record 2: its content does not match its hash (edited)" in r.stdout, r.stdout
    r = verify(lines[:1] + lines[2:])
    assert r.returncode == 1 and ":2: record 3:" in r.stdout and "missing or out of order" in r.stdout, r.stdout
    r = verify([lines[1], lines[0]] + lines[2:])
    assert r.returncode == 1 and ":1: record 2:" in r.stdout, r.stdout
    r = verify(lines[:2] + [lines[1]] + lines[2:])
    assert r.returncode == 1 and ":3: record 2:" in r.stdout, r.stdout


def test_rotation_keeps_the_chain_across_files(tmp_path, upstream, ids):
    assert mandate("keygen", "--alg", "EdDSA", "--out", str(tmp_path / "audit.jwk")).returncode == 0
    c = chain(ids.alice, [ids.agent()], ["echo"])
    p = AuditedProxy(tmp_path, upstream.port, {"Alice": ids.alice.did}, "max_size 2k;")
    try:
        for i in range(12):
            assert_forwarded(p.send(c.headers("GET", p.origin + f"/echo/{i}"), f"/echo/{i}"))
    finally:
        p.proxy.stop()
    files = sorted(tmp_path.glob("audit.jsonl.*")) + [tmp_path / "audit.jsonl"]
    assert len(files) >= 3
    r = mandate("audit", "verify", "--key", str(tmp_path / "audit.jwk"), *map(str, files))
    assert r.returncode == 0, r.stdout
    # A missing middle file is found where the next one starts.
    r = mandate("audit", "verify", "--key", str(tmp_path / "audit.jwk"), str(files[0]), *map(str, files[2:]))
    assert r.returncode == 1 and f"{files[2]}:1:" in r.stdout, r.stdout


def test_kill_9_under_load_loses_no_answered_record_and_leaves_no_partial_one(tmp_path, upstream, ids):
    """A crash loses nothing that was acknowledged: every response a client received has its
    record, complete, in a trail that still verifies; and the restarted proxy goes on with it."""
    import threading

    assert mandate("keygen", "--alg", "EdDSA", "--out", str(tmp_path / "audit.jwk")).returncode == 0
    agent = ids.agent()
    c = chain(ids.alice, [agent], ["echo"])
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    conf = tmp_path / "proxy.conf"
    conf.write_text(config_text(port, upstream.port, {"Alice": ids.alice.did}, "off",
                                "audit { file audit.jsonl; key audit.jwk; checkpoint_every 50; }\n"))
    p = Proxy(str(conf), port, tmp_path / "proxy.log")
    answered: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load(signed: bool):
        while not stop.is_set():
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                while not stop.is_set():
                    i = len(answered)
                    path = f"/echo/{i}"
                    conn.request("GET", path, headers=c.headers("GET", origin + path) if signed else {})
                    r = conn.getresponse()
                    r.read()  # the whole response: acknowledged
                    with lock:
                        answered.append(r.getheader("Mandate-Request-Id"))
            except (OSError, http.client.HTTPException):
                return  # the proxy is gone

    threads = [threading.Thread(target=load, args=(i % 2 == 0,)) for i in range(4)]
    for t in threads:
        t.start()
    deadline = __import__("time").monotonic() + 20
    while len(answered) < 300 and __import__("time").monotonic() < deadline:
        __import__("time").sleep(0.05)
    p.proc.kill()  # SIGKILL, mid-traffic
    p.proc.wait()
    stop.set()
    for t in threads:
        t.join()
    p.out.close()
    assert len(answered) >= 300
    trail = tmp_path / "audit.jsonl"
    text = trail.read_text()
    assert text.endswith("\n")
    rs = [json.loads(line) for line in text.splitlines()]  # no partial line
    ids_in_trail = {r.get("request_id") for r in rs}
    missing = [i for i in answered if i not in ids_in_trail]
    assert not missing, f"{len(missing)} answered requests have no record, e.g. {missing[:3]}"
    r = mandate("audit", "verify", str(trail))
    assert r.returncode == 0, r.stdout + r.stderr

    # The restarted proxy continues the same chain.
    p = Proxy(str(conf), port, tmp_path / "proxy2.log")
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/echo/after", headers=c.headers("GET", origin + "/echo/after"))
        assert conn.getresponse().status == 200
    finally:
        p.stop()
    r = mandate("audit", "verify", str(trail))
    assert r.returncode == 0, r.stdout + r.stderr
