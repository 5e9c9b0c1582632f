#!/usr/bin/env python3
"""How long `mandate revoke agent` takes to return while a proxy runs, and that the very next
request of the revoked agent (whose chain is cached) is refused. Prints a table and JSON.

    MANDATE_BIN=.build/release/mandate .venv/bin/python Benchmarks/revocation_latency.py [N]
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Tests" / "interop"))

from harness import MANDATE  # noqa: E402
from test_registry import RegistryProxy  # noqa: E402
from upstream import Upstream  # noqa: E402


def main(n: int) -> None:
    up = Upstream().start()
    with tempfile.TemporaryDirectory() as d:
        p = RegistryProxy(Path(d), up.port, {})
        try:
            p.ok("principal", "add", "--name", "alice", "--key", "alice.jwk")
            agents = [p.register(f"agent-{i}") for i in range(n)]
            revoke_ms, refused = [], 0
            for i, (did, c) in enumerate(agents):
                assert p.send(c).status == 200 and p.send(c).status == 200  # cached
                t = time.perf_counter()
                r = p.cli("revoke", "agent", f"agent-{i}")
                revoke_ms.append((time.perf_counter() - t) * 1000)
                assert r.returncode == 0 and "applied" in r.stderr, r.stderr
                o = p.send(c)
                refused += o.status == 401 and o.error == "invalid_token"
        finally:
            p.stop()
            up.stop()
    result = {"binary": MANDATE, "revocations": n, "next_request_refused": refused,
              "revoke_ms_median": round(statistics.median(revoke_ms), 1), "revoke_ms_max": round(max(revoke_ms), 1)}
    print(f"{'revocations':>12} {'next refused':>13} {'median ms':>10} {'max ms':>8}")
    print(f"{n:>12} {refused:>13} {result['revoke_ms_median']:>10} {result['revoke_ms_max']:>8}")
    print(json.dumps(result))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
