"""The on-disk feature cache: the same feature-extraction run twice, each in a fresh process.

Runs `python -m core.train` twice with identical settings on one dataset, into one new runs folder
(so the first run fills <runs>/.cache/features/ and the second can read it). Each run is a new
process, so nothing is shared in memory (the in-process decode cache does not help): what the
second run saves is the disk cache's doing. Reported per run, from the time stamps of its output
lines as they arrive: seconds from the job's first line ("Phase: scan") to the head phase starting
and to the first head epoch ending, the whole process' wall time, and the test accuracy.

    KERAS_HOME=../shared/weights .venv/bin/python bench/feature_cache.py ../shared/datasets/cats_and_dogs_small \
        [--base mobilenet_v2] [--size 160] [--epochs 3]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (sets sys.path and KERAS_HOME)


def one_run(data: str, runs_dir: str, base: str, size: int, epochs: int) -> dict:
    """One CLI training; the seconds at which its milestones were printed."""
    command = [sys.executable, "-m", "core.train", "--data", data, "--strategy", "feature-extraction",
               "--base", base, "--image-size", str(size), "--epochs", str(epochs), "--runs-dir", runs_dir]
    start = time.monotonic()
    marks, last = {}, ""
    with subprocess.Popen(command, cwd=common.ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True, bufsize=1) as process:
        for line in process.stdout:
            now = time.monotonic() - start
            if "Phase: scan" in line:
                marks.setdefault("job_start", now)
            if "Phase: head" in line:
                marks.setdefault("head_start", now)
            if "head epoch 1:" in line:
                marks.setdefault("first_head_epoch", now)
            if "read from the feature cache" in line:
                marks["cache_hits"] = marks.get("cache_hits", 0) + 1
            last = line
    result = json.loads(last)
    job = marks.get("job_start", 0.0)
    return {"to_head_start_s": round(marks["head_start"] - job, 1),
            "to_first_head_epoch_s": round(marks["first_head_epoch"] - job, 1),
            "process_wall_s": round(time.monotonic() - start, 1), "cache_hits": marks.get("cache_hits", 0),
            "test_accuracy": result.get("test_accuracy"), "val_accuracy": result.get("val_accuracy")}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("--base", default="mobilenet_v2")
    p.add_argument("--size", type=int, default=160)
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    info = common.header("feature cache: the same feature-extraction run twice")
    rows = []
    with tempfile.TemporaryDirectory(prefix="feature-cache-bench-") as runs_dir:
        for label in ("first (cache empty)", "second (identical)"):
            load = common.load1()
            row = {"run": label, "load1_before": load, **one_run(args.data, runs_dir, args.base, args.size,
                                                                 args.epochs)}
            print(row, flush=True)
            rows.append(row)
    print(f"uptime end: {common.uptime()}")
    print(json.dumps({**info, "rows": rows}))


if __name__ == "__main__":
    main()
