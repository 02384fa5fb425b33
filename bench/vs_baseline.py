"""Our strategies against the TF tutorial recipe, in the same run, alternating, fresh processes.

    KERAS_HOME=../shared/weights python bench/vs_baseline.py ../shared/datasets/cats_and_dogs_small \
        [--rounds 1] [--ours feature-extraction fine-tune] [--baseline-fine-tune]

Each measurement is a fresh Python process (no warm caches): the baseline via
bench/tutorial_baseline.py, ours via `python -m core.train`. Prints a table and the time ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _last_json(cmd: list[str]) -> dict:
    """Run one measurement; its result JSON plus the CPU seconds it used and the load around it."""
    cpu0, load0 = _children_cpu(), os.getloadavg()[0]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"failed: {' '.join(cmd)}")
    result = json.loads(lines[-1])
    result["cpu_seconds"] = round(_children_cpu() - cpu0, 1)
    result["load_before_after"] = [round(load0, 1), round(os.getloadavg()[0], 1)]
    return result


def baseline(data: str, fine_tune: bool) -> dict:
    return _last_json([sys.executable, os.path.join(HERE, "tutorial_baseline.py"), data]
                      + (["--fine-tune"] if fine_tune else []))


def ours(data: str, strategy: str, runs_dir: str, extra: list[str]) -> dict:
    return _last_json([sys.executable, "-m", "core.train", "--data", data, "--strategy", strategy,
                       "--base", "mobilenet_v2", "--image-size", "160", "--runs-dir", runs_dir] + extra)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--ours", nargs="+", default=["feature-extraction", "fine-tune"])
    p.add_argument("--baseline-fine-tune", action="store_true")
    p.add_argument("--extra", default="", help="extra arguments for core.train, e.g. '--epochs 20'")
    a = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as runs_dir:
        for r in range(a.rounds):
            b = baseline(a.data, a.baseline_fine_tune)
            rows.append(("tf-tutorial" + (" + fine-tune" if a.baseline_fine_tune else ""), r, b))
            print(json.dumps(rows[-1][2]), flush=True)
            for strategy in a.ours:
                o = ours(a.data, strategy, runs_dir, a.extra.split())
                rows.append((strategy, r, o))
                print(json.dumps(o), flush=True)
    base = [row[2] for row in rows if row[0].startswith("tf-tutorial")]
    base_t = sum(b["seconds"] for b in base) / len(base)
    base_cpu = sum(b["cpu_seconds"] for b in base) / len(base)
    print("\n| recipe | round | wall time (s) | wall / baseline | CPU time (s) | CPU / baseline | "
          "load avg before→after | test accuracy |\n|---|---|---|---|---|---|---|---|")
    for name, r, res in rows:
        print(f"| {name} | {r + 1} | {res['seconds']:.1f} | {res['seconds'] / base_t:.3f} | "
              f"{res['cpu_seconds']:.0f} | {res['cpu_seconds'] / base_cpu:.3f} | "
              f"{res['load_before_after'][0]}→{res['load_before_after'][1]} | {res['test_accuracy']:.4f} |")


if __name__ == "__main__":
    main()
