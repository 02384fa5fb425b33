"""Latency of the Inspect / Visualize engine on MobileNetV2 at 160 px, as the dashboard calls it.

For each operation: the first call (builds the sub-model and traces its tf.function) and the
median of the next --runs calls. Goals on a CPU: Grad-CAM <= 1 s, activations <= 1 s, one
ideal-class step <= 0.2 s.

    KERAS_HOME=../shared/weights python -m bench.latency_explain [--runs 5]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("KERAS_HOME", os.path.join(ROOT, "..", "shared", "weights"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from core import adversarial, explain, visualize  # noqa: E402
from core.models import build_transfer  # noqa: E402

MID_LAYER = "block_6_expand_relu"  # 20x20x192 at 160 px: the middle of MobileNetV2


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def call_latency(fn, runs: int) -> tuple[float, float]:
    """(first call, median of the next `runs` calls) in seconds."""
    first = timed(fn)
    return first, statistics.median(timed(fn) for _ in range(runs))


def step_latency(run_steps, runs: int) -> tuple[float, float]:
    """(first step, median step) of an optimization loop; run_steps(tick) must call tick() once per step."""
    stamps = [time.perf_counter()]
    run_steps(lambda: stamps.append(time.perf_counter()))
    gaps = np.diff(stamps)
    return float(gaps[0]), float(np.median(gaps[1:runs + 1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=160)
    args = parser.parse_args()

    start = time.perf_counter()
    model = build_transfer("mobilenet_v2", args.size, 2)
    print(f"MobileNetV2 at {args.size} px, 2 classes, built in {time.perf_counter() - start:.1f} s; "
          f"Grad-CAM layer {explain.last_conv_layer(model)}, activations of {MID_LAYER}")
    image = np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3)).astype(np.uint8)
    print_rows(explain_rows(model, image, args.runs), args.runs)


def explain_ops(model, image, layer: str = MID_LAYER) -> list[tuple[str, str, object, float | None]]:
    """[(operation, kind, fn, goal s or None)]. kind "call": fn() is one call; kind "step":
    fn(tick, steps) runs an optimization of `steps` steps calling tick() after each."""

    def ideal_steps(tick, steps):
        visualize.ideal_class_image(model, 0, steps=steps, on_step=lambda *step: tick())

    def filter_steps(tick, steps):
        visualize.filter_pattern(model, layer, 0, steps=steps, on_step=lambda *step: tick())

    return [
        ("Grad-CAM", "call", lambda: explain.grad_cam(model, image), 1.0),
        ("activations", "call", lambda: explain.activations(model, image, layer), 1.0),
        ("ideal-class step", "step", ideal_steps, 0.2),
        ("filter-pattern step", "step", filter_steps, None),
        ("FGSM, 1 image", "call", lambda: adversarial.fgsm(model, image[None], [0], 2 / 255), None),
    ]


def one_step(run_steps) -> float:
    """Seconds of the second step of a two-step run (the first may include tracing)."""
    stamps = [time.perf_counter()]
    run_steps(lambda: stamps.append(time.perf_counter()), 2)
    return float(stamps[2] - stamps[1])


def explain_rows(model, image, n: int, layer: str = MID_LAYER) -> list[tuple[str, tuple[float, float], float | None]]:
    """[(operation, (first call s, median s), goal s or None)]: each operation n + 1 times in a row."""
    return [(name, call_latency(fn, n) if kind == "call" else step_latency(lambda tick, fn=fn: fn(tick, n + 1), n), goal)
            for name, kind, fn, goal in explain_ops(model, image, layer)]


def print_rows(rows, n: int) -> None:
    print(f"\n{'operation':<22}{'first call s':>14}{'median s':>11}{'goal s':>9}  ok")
    for name, (first, median), goal in rows:
        ok = "" if goal is None else ("yes" if median <= goal else "NO")
        print(f"{name:<22}{first:>14.3f}{median:>11.3f}{'' if goal is None else f'{goal:.1f}':>9}  {ok}")
    print(f"\nmedian of {n} runs after the first; 'first call' includes building and tracing.")


if __name__ == "__main__":
    main()
