#!/usr/bin/env python3
"""How long `mandate revoke agent` (and `POST /v1/revocations` on the admin API) takes to return
while a proxy runs, and that the very next request of the revoked agent (whose chain is cached)
is refused. Prints a table and JSON.

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
            agents = [p.register(f"agent-{i}") for i in range(2 * n)]
            times: dict[str, list[float]] = {"cli": [], "api": []}
            refused = 0
            for i, (did, c) in enumerate(agents):
                assert p.send(c).status == 200 and p.send(c).status == 200  # cached
                way = "cli" if i < n else "api"
                t = time.perf_counter()
                if way == "cli":
                    r = p.cli("revoke", "agent", f"agent-{i}")
                    assert r.returncode == 0 and "applied" in r.stderr, r.stderr
                else:
                    assert p.api("POST", "/v1/revocations", {"type": "agent", "id": did})[0] == 200
                times[way].append((time.perf_counter() - t) * 1000)
                o = p.send(c)
                refused += o.status == 401 and o.error == "invalid_token"
        finally:
            p.stop()
            up.stop()
    result = {"binary": MANDATE, "revocations": 2 * n, "next_request_refused": refused}
    print(f"{'via':>26} {'revocations':>12} {'median ms':>10} {'max ms':>8}")
    for way, label in [("cli", "mandate revoke agent"), ("api", "POST /v1/revocations")]:
        med, top = round(statistics.median(times[way]), 1), round(max(times[way]), 1)
        result[f"{way}_ms_median"], result[f"{way}_ms_max"] = med, top
        print(f"{label:>26} {n:>12} {med:>10} {top:>8}")
    print(f"next request refused: {refused} of {2 * n}")
    print(json.dumps(result))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
