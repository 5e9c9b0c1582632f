"""The README's main job: `mandate demo` (what scripts/run starts), and the requests its banner
prints, run as a new user would run them: forwarded, refused for scope, refused without a
credential, and a payment held until Alice approves it with her key."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import OFFLINE
from harness import MANDATE, free_port

pytestmark = pytest.mark.skipif(OFFLINE, reason="MANDATE_INTEROP_OFFLINE=1")


def mandate(*args, **kw):
    return subprocess.run([MANDATE, *args], capture_output=True, text=True, timeout=60, **kw)


@pytest.fixture
def demo(tmp_path):
    port, upstream, approvals = free_port(), free_port(), free_port()
    proc = subprocess.Popen([MANDATE, "demo", "--dir", str(tmp_path / "demo"), "--port", str(port),
                             "--upstream-port", str(upstream), "--approval-port", str(approvals)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", approvals), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() is not None else "timeout"
            time.sleep(0.05)
    yield tmp_path / "demo", f"http://127.0.0.1:{port}", f"http://127.0.0.1:{approvals}"
    proc.terminate()
    proc.wait(10)


def test_the_demo_banner_requests_behave_as_it_says(demo):
    d, base, approvals = demo
    key, chain, pay = str(d / "agent.jwk"), str(d / "chain.txt"), str(d / "pay-chain.txt")
    r = mandate("request", "--key", key, "--chain", chain, base + "/invoices/42")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["headers"]["mandate-scope"] == "invoices:read"
    r = mandate("request", "-i", "-X", "POST", "-d", '{"amount":100}', "--key", key, "--chain", chain, base + "/payments")
    assert r.returncode == 22 and "insufficient_scope" in r.stdout
    try:
        urllib.request.urlopen(base + "/invoices/42", timeout=10)
        raise AssertionError("a plain request was forwarded")
    except urllib.error.HTTPError as e:
        assert e.code == 401
    # The payment waits; Alice lists what waits and approves it.
    held = subprocess.Popen([MANDATE, "request", "-X", "POST", "-d", '{"amount":100,"to":"ACME"}', "--key", key,
                             "--chain", pay, base + "/payments"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    alice = str(d / "alice.jwk")
    deadline = time.monotonic() + 20
    while True:
        listed = json.loads(mandate("approvals", "list", "--json", "--key", alice, "--url", approvals).stdout)["approvals"]
        if listed or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(listed) == 1 and "amount=100 to=ACME" in listed[0]["binding_message"]
    r = mandate("approve", listed[0]["auth_req_id"], "--key", alice, "--url", approvals)
    assert r.returncode == 0, r.stderr
    out, err = held.communicate(timeout=30)
    assert held.returncode == 0, err
    echoed = json.loads(out)
    assert echoed["path"] == "/payments" and "mandate-approval" in echoed["headers"]
