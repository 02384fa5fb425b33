"""Interactive latency: what a dashboard user waits for, first call and median of the next --runs.

  augmentation preview  core.augment.preview: 9 variants of one image with the classic settings
                        (rotation 40, shifts 0.2, shear 0.2, zoom 0.2, flips) -- goal 0.3 s; and,
                        as the baseline, the same preview through one Keras layer per setting
                        (the engine before 2026-11-29, bench/epoch_cost.layers_augmentation)
  Grad-CAM, activations, one ideal-class step (and the filter-pattern step and FGSM, no goal)
                        bench/latency_explain.py's measurements, on the run's model
                        -- goals 1 s, 1 s, 0.2 s
  model load            core.runs.load_model(run_dir) of a feature-extraction run (safe mode) -- no goal

The first call of each is timed on its own (it builds and traces); then --runs rounds call every
operation once, in turn (preview, Grad-CAM, ..., model load, preview, ...), so a load spike on
the shared machine hits all of them alike; medians of the rounds. A step is the second step of a
two-step run. CPU time (time.process_time(), all threads) is given for the calls: with
TensorFlow's threads it can exceed wall time on an idle machine, and it moves less with load.

The model is a feature-extraction run's model.keras (--run); without --run, the graph such a run
saves (MobileNetV2 at 160 px + head, untrained head) is saved to a temporary run folder first.
The image is a real photo (--image, or the first test image of --data) or random pixels.

    KERAS_HOME=../shared/weights .venv/bin/python bench/latency.py [--run RUN_DIR] \
        [--data ../shared/datasets/cats_and_dogs_small] [--runs 5]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (sets sys.path and KERAS_HOME)
import epoch_cost  # noqa: E402
import latency_explain  # noqa: E402

import numpy as np  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", help="a feature-extraction run folder (with model.keras)")
    p.add_argument("--data", help="a dataset: its first test (or train) image is the input")
    p.add_argument("--image", help="an image file to use as the input")
    p.add_argument("--runs", type=int, default=5)
    a = p.parse_args()
    info = common.header("interactive latency")

    from core import data, explain, images, runs
    from core.augment import AugmentConfig, preview
    from core.models import build_transfer

    tmp = None
    run_dir = a.run
    if not run_dir:
        tmp = tempfile.mkdtemp(prefix="tl-latency-")
        run_dir = tmp
        runs.save_model(run_dir, build_transfer("mobilenet_v2", 160, 2))
    try:
        n = a.runs
        with common.Timer() as first_load:
            model = runs.load_model(run_dir)
        size = int(model.inputs[0].shape[1])
        path = a.image
        if not path and a.data:
            ds = data.scan(a.data)
            path = (ds.splits.get("test") or ds.splits["train"])[0][0]
        image = (images.load_image(path, size) if path else
                 np.random.default_rng(0).integers(0, 256, (size, size, 3)).astype(np.uint8))
        layer = latency_explain.MID_LAYER if latency_explain.MID_LAYER in [l.name for l in model.layers] \
            else explain.conv_layers(model)[len(explain.conv_layers(model)) // 2]
        print(f"model {model.name} from {run_dir} ({size} px); image {path or 'random pixels'}; "
              f"activations of {layer}; Grad-CAM on {explain.last_conv_layer(model)}", flush=True)

        def layers_preview():
            aug = epoch_cost.layers_augmentation(AugmentConfig.classic(), seed=0)
            out = np.asarray(aug(np.repeat(image[None].astype(np.float32), 9, axis=0), training=True))
            return [np.clip(v, 0, 255).astype(np.uint8) for v in out]

        ops = [("augmentation preview (9 variants)", "call",
                lambda: preview(image, AugmentConfig.classic(), n=9), 0.3),
               ("  the same, one Keras layer per setting (before)", "call", layers_preview, None)]
        ops += latency_explain.explain_ops(model, image, layer)
        ops.append(("model load (runs.load_model)", "call", lambda: runs.load_model(run_dir), None))

        def first_step(run_steps) -> float:
            stamps = [time.perf_counter()]
            run_steps(lambda: stamps.append(time.perf_counter()), 2)
            return stamps[1] - stamps[0]

        # First calls (building, tracing), then n rounds with every operation once per round, in turn.
        first = {name: latency_explain.timed(fn) if kind == "call" else first_step(fn)
                 for name, kind, fn, _ in ops if not name.startswith("model load")}
        first["model load (runs.load_model)"] = first_load.seconds
        def call(fn) -> dict:
            cpu0 = time.process_time()
            wall = latency_explain.timed(fn)
            return {"seconds": wall, "cpu": time.process_time() - cpu0}

        arms = {name: (lambda fn=fn: call(fn)) if kind == "call"
                else (lambda fn=fn: {"seconds": latency_explain.one_step(fn)}) for name, kind, fn, _ in ops}
        results, loads = common.alternate(arms, n)
        rows = [(name, (first[name], common.median(common.column(results[name], "seconds"))), goal)
                for name, _, _, goal in ops]
        cpu = {name: common.median(common.column(results[name], "cpu")) if kind == "call" else None
               for name, kind, _, _ in ops}
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    table = [[name, first, med, "—" if cpu[name] is None else cpu[name], "" if goal is None else goal,
              "" if goal is None else ("yes" if med <= goal else "NO")] for name, (first, med), goal in rows]
    print(f"\nmedian of {n} rounds (every operation once per round, in turn) after the first calls; "
          f"'first call' includes building and tracing (for the steps: the first step); "
          f"load average before the rounds: {', '.join(map(str, loads))}\n")
    print(common.table(["operation", "first call (s)", "median (s)", "median CPU time (s)", "goal (s)", "met"], table))
    common.finish(info, run=a.run, image=path, runs=n, loads=loads,
                  results={name: {"first": first, "median": med, "median_cpu": cpu[name], "goal": goal}
                           for name, (first, med), goal in rows},
                  goals_met=all(goal is None or med <= goal for _, (_, med), goal in rows))


if __name__ == "__main__":
    main()
