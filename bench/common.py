"""Shared by the benchmarks: the run header (date, command, machine, load), alternating arms,
medians, a Markdown table and the last JSON line.

The machine is shared and its load moves by the minute, so every benchmark that compares two
things runs them alternately (A B A B ...) in one process and reports medians and the ratio of
medians; the load average is sampled before every round and printed with the results.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("KERAS_HOME", os.path.join(ROOT, "..", "shared", "weights"))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from core import devices  # noqa: E402

devices.configure()  # TensorFlow's log level and threads, as the app and the command lines set them


def now_utc() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average: " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def header(title: str) -> dict:
    """Print and return where and when this run happens."""
    info = {"benchmark": title, "started": now_utc(),
            "command": " ".join([os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(ROOT)
                                 else sys.executable] + sys.argv),
            "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}, {_gpu()}",
            "uptime_start": uptime()}
    print(f"# {title}\n{info['started']}\ncommand: {info['command']}\nmachine: {info['machine']}\n"
          f"uptime:  {info['uptime_start']}", flush=True)
    return info


def _gpu() -> str:
    try:
        import tensorflow as tf
        gpus = tf.config.list_physical_devices("GPU")
    except Exception:  # noqa: BLE001  (no TF in a subprocess that does not need it)
        return "GPU unknown"
    return f"{len(gpus)} GPU" if gpus else "no GPU"


def alternate(arms: dict, rounds: int, log=print) -> tuple[dict[str, list], list[float]]:
    """Call each arm once per round, in turn (A B C A B C ...).

    An arm is a function returning a number (seconds) or a dict of numbers (its first key is the
    main one). Returns ({arm: [result per round]}, [1-minute load average before each round]).
    """
    results = {name: [] for name in arms}
    loads = []
    for r in range(rounds):
        loads.append(load1())
        for name, fn in arms.items():
            value = fn()
            results[name].append(value)
            shown = value if not isinstance(value, dict) else next(iter(value.values()))
            log(f"  round {r + 1}/{rounds}  {name:<28} {shown:9.3f}   (load {loads[-1]})")
    return results, loads


def median(values) -> float:
    return float(statistics.median(values))


def column(results: list, key: str | None = None) -> list[float]:
    return [r[key] if key else r for r in results]


def table(headers: list[str], rows: list[list]) -> str:
    def cell(v):
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def finish(info: dict, **figures) -> None:
    """Print the closing uptime and the last line: one JSON object with everything."""
    info = {**info, "finished": now_utc(), "uptime_end": uptime(), **figures}
    print(f"uptime at the end: {info['uptime_end']}")
    print(json.dumps(info, default=float), flush=True)


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def run_cli(cmd: list[str]) -> tuple[dict | None, float, subprocess.CompletedProcess]:
    """One training CLI process: (its last JSON line, wall seconds, the process). On a failure (or
    no JSON line) the JSON is None and the end of its output goes to stderr."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        return None, wall, proc
    return json.loads(lines[-1]), wall, proc
