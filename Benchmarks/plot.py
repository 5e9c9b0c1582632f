#!/usr/bin/env python3
"""Latency distributions from Benchmarks/compare's JSON, as a PNG.

    Benchmarks/plot.py [COMPARE_JSON] [-o PNG]     # defaults: Benchmarks/out/compare.json, Benchmarks/out/latency.png

Left: the open loop at half of Mandate's maximum (latency from each request's due time), right: the
closed loop at the maximum; both as percentile spectra (HdrHistogram style: the x axis stretches the
tail, so p99, p99.9 and p99.99 are evenly spaced). Needs matplotlib: installed into .venv from
Benchmarks/requirements.txt when missing.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_PY = os.path.join(ROOT, ".venv", "bin", "python")


def ensure_matplotlib():
    """matplotlib here, or in .venv (made and filled from Benchmarks/requirements.txt when missing)."""
    try:
        import matplotlib  # noqa: F401
        return
    except ImportError:
        pass
    in_venv = os.path.abspath(sys.executable) == os.path.abspath(VENV_PY)
    if not os.path.exists(VENV_PY):
        subprocess.run([sys.executable, "-m", "venv", os.path.join(ROOT, ".venv")], check=True)
    if subprocess.run([VENV_PY, "-c", "import matplotlib"], capture_output=True).returncode != 0:
        print("installing matplotlib into .venv", file=sys.stderr)
        subprocess.run([VENV_PY, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r",
                        os.path.join(ROOT, "Benchmarks", "requirements.txt")], check=True, stdout=sys.stderr)
    if not in_venv:
        os.execv(VENV_PY, [VENV_PY] + sys.argv)


def spectrum(run):
    """(percentile, latency ms) points: each bucket's upper bound at the share of values up to it."""
    buckets = run["histogram_ns"]["buckets"]
    total = sum(c for _, _, c in buckets)
    pts, seen = [], 0
    for _, high, count in buckets:
        seen += count
        pts.append((seen / total, high / 1e6))
    return pts


def main():
    a = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("json", nargs="?", default=os.path.join(ROOT, "Benchmarks", "out", "compare.json"))
    a.add_argument("-o", "--output", default=os.path.join(ROOT, "Benchmarks", "out", "latency.png"))
    args = a.parse_args()
    ensure_matplotlib()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FixedFormatter

    with open(args.json) as f:
        r = json.load(f)
    runs = r["runs"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=False)
    ticks = [0.5, 0.9, 0.99, 0.999, 0.9999]
    colors = {"mandate": "#c0392b", "nginx": "#2471a3"}
    for ax, mode in zip(axes, ["open", "closed"]):
        top = 0
        for target in ["mandate", "nginx"]:
            run = runs[target][mode]
            pts = [(p, v) for p, v in spectrum(run) if p < 0.99999]
            if not pts:
                continue
            xs = [1 / (1 - p) for p, _ in pts]
            ys = [v for _, v in pts]
            top = max(top, max(xs))
            lat = run["latency_us"]
            label = (f"{'Mandate' if target == 'mandate' else 'nginx'}: {run['requests_per_second']:.0f} req/s, "
                     f"p50 {lat['p50'] / 1000:.2f} ms, p99 {lat['p99'] / 1000:.2f} ms")
            ax.step(xs, ys, where="post", color=colors[target], label=label, linewidth=1.6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(FixedLocator([1 / (1 - t) for t in ticks]))
        ax.xaxis.set_major_formatter(FixedFormatter([f"p{t * 100:g}" for t in ticks]))
        ax.xaxis.set_minor_locator(FixedLocator([]))
        ax.set_xlim(1, max(10_000, top))
        ax.set_xlabel("percentile")
        ax.set_ylabel("latency (ms, log scale)")
        ax.grid(True, which="both", alpha=0.3)
        if mode == "open":
            ax.set_title(f"open loop, {r['open_loop_rate']:.0f} req/s for both\n(latency from each request's due time)")
        else:
            ax.set_title(f"closed loop, {r['settings']['connections']} connections\n(maximum rate)")
        ax.legend(loc="upper left", fontsize=8)
    m = r["machine"]
    fig.suptitle(f"Mandate (full DPoP + chain verification) vs nginx proxy_pass, {r['settings']['workers']} worker(s); "
                 f"{m['nproc']} × {m['cpu_model']}, Linux {m['kernel']}", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    fig.savefig(args.output, dpi=110)
    print(args.output)


if __name__ == "__main__":
    main()
