"""Fixtures: a Python upstream, a config in tmp, the real `mandate` binary.

MANDATE_BIN names the binary (default .build/debug/mandate). MANDATE_INTEROP_OFFLINE=1 skips
every test that needs `mandate serve` and keeps the `mandate explain` ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness import MANDATE, Explain, Proxy, config_text, free_port
from mandate_creds import Key, Party
from upstream import Upstream

OFFLINE = os.environ.get("MANDATE_INTEROP_OFFLINE") == "1"


def pytest_report_header(config):
    return f"mandate binary: {MANDATE}" + ("  (offline: explain only)" if OFFLINE else "")


@pytest.fixture(scope="session", autouse=True)
def _binary():
    if not os.access(MANDATE, os.X_OK):
        pytest.exit(f"no mandate binary at {MANDATE}: run swift build or set MANDATE_BIN", 2)


class Identities:
    """Principals enrolled in the suite's config, and one who is not."""

    def __init__(self):
        self.alice = Party.of(Key.ed25519())              # did:key, Ed25519
        self.carol = Party.of(Key.p256(), method="jwk")   # did:jwk, P-256
        self.mallory = Party.of(Key.ed25519())            # never enrolled

    @staticmethod
    def agent(alg: str = "EdDSA", method: str = "key") -> Party:
        return Party.of(Key.ed25519() if alg == "EdDSA" else Key.p256(), method=method)


@pytest.fixture(scope="session")
def ids() -> Identities:
    return Identities()


@pytest.fixture(scope="session")
def upstream():
    u = Upstream().start()
    yield u
    u.stop()


@pytest.fixture(scope="session")
def suite_config(tmp_path_factory, ids, upstream) -> tuple[str, int, Path]:
    d = tmp_path_factory.mktemp("mandate")
    port = free_port()
    log = d / "access.log"
    path = d / "proxy.conf"
    path.write_text(config_text(port, upstream.port, {"Alice": ids.alice.did, "Carol": ids.carol.did}, str(log)))
    return str(path), port, log


@pytest.fixture(scope="session")
def proxy(suite_config):
    if OFFLINE:
        pytest.skip("MANDATE_INTEROP_OFFLINE=1")
    path, port, log = suite_config
    p = Proxy(path, port, log)
    yield p
    p.stop()


@pytest.fixture(scope="session")
def explain(suite_config) -> Explain:
    return Explain(suite_config[0], f"http://127.0.0.1:{suite_config[1]}")


@pytest.fixture(scope="session")
def origin(suite_config) -> str:
    return f"http://127.0.0.1:{suite_config[1]}"


@pytest.fixture(params=["explain", "http"])
def transport(request):
    """Each check, once offline through `mandate explain` and once through the running proxy."""
    return request.getfixturevalue("explain" if request.param == "explain" else "proxy")
