"""Latency of the pretrained ImageNet classifier (core.pretrained), as a page feels it.

(a) Switching to it: `pretrained.load()` in a fresh process, after TensorFlow is imported (the
    server has it loaded already), and the second access (the per-process cache). Each of --runs
    fresh processes measures one of each; TensorFlow's import is timed apart. Goals: first
    <= 3 s, second <= 0.5 s.
(b) One ideal-class-image step at 224 px (core.pretrained.ideal_image, the default
    regularization), in this process: the first step (tracing) and the median of the next --runs.
    Goal <= 0.2 s.

    KERAS_HOME=../shared/weights .venv/bin/python bench/pretrained_latency.py [--runs 5] [--model mobilenet_v2]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import ROOT, finish, header, load1, median, table  # noqa: E402

# One fresh process: TensorFlow's import, the first load, the second access, in seconds.
FRESH = """
import json, sys, time
sys.path.insert(0, ".")
from core import devices, pretrained
devices.configure()
t0 = time.perf_counter(); import tensorflow, keras; t1 = time.perf_counter()
model = pretrained.load(sys.argv[1]); t2 = time.perf_counter()
again = pretrained.load(sys.argv[1]); t3 = time.perf_counter()
assert again is model
print(json.dumps({"import": t1 - t0, "first": t2 - t1, "second": t3 - t2}))
"""


def fresh_load(key: str) -> dict:
    out = subprocess.run([sys.executable, "-c", FRESH, key], cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def ideal_steps(key: str, runs: int) -> tuple[float, float]:
    """(first step, median of the next `runs` steps) of the ideal "tabby" image."""
    import numpy as np

    from core import pretrained

    stamps = [time.perf_counter()]
    pretrained.ideal_image(key, pretrained.class_names().index("tabby"), steps=runs + 1,
                           on_step=lambda *step: stamps.append(time.perf_counter()))
    gaps = np.diff(stamps)
    return float(gaps[0]), float(np.median(gaps[1:]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--model", default="mobilenet_v2")
    args = p.parse_args()
    info = header("pretrained classifier latency")

    loads, fresh = [], []
    for r in range(args.runs):
        loads.append(load1())
        fresh.append(fresh_load(args.model))
        print(f"  fresh process {r + 1}/{args.runs}: import TF {fresh[-1]['import']:.2f} s, first load "
              f"{fresh[-1]['first']:.2f} s, second {fresh[-1]['second'] * 1000:.3f} ms   (load {loads[-1]})", flush=True)
    loads.append(load1())
    first_step, step = ideal_steps(args.model, args.runs)

    figures = {"model": args.model, "runs": args.runs, "load_averages": loads,
               "tensorflow_import_s": median([f["import"] for f in fresh]),
               "first_load_s": median([f["first"] for f in fresh]),
               "second_access_s": median([f["second"] for f in fresh]),
               "ideal_first_step_s": first_step, "ideal_step_s": step}
    print(table(["what", f"median of {args.runs} (s)", "goal (s)"], [
        ["import TensorFlow + Keras (fresh process)", figures["tensorflow_import_s"], "—"],
        [f"first `pretrained.load('{args.model}')` (fresh process, TF imported)", figures["first_load_s"], "≤ 3"],
        ["second access", figures["second_access_s"], "≤ 0.5"],
        ["one ideal-image step at 224 px (first step, tracing: "
         f"{first_step:.2f} s)", step, "≤ 0.2"],
    ]))
    finish(info, **figures)


if __name__ == "__main__":
    main()
