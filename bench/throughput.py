"""Throughput of our feature-extraction pass against the bound: images per second.

Three arms, alternated in one process (A B C A B C ...), medians reported:

  engine  what core.training does for feature extraction, with its own functions:
          core.pipeline.load_arrays (PIL decode + resize on its thread pool, cache cleared first so
          every round really decodes) then core.features.extract (the frozen MobileNetV2 base
          and pooling, batches of 64) -- decode + resize + forward, from the JPEG files. Its
          compiled forward is traced once and reused, as for the validation split of a training
  engine, cold  the same with a new compiled forward each round, so it includes tracing, as the
          train split of a fresh training pays once
  bound   a bare compiled forward pass of the same model (tf.function) over the same images,
          already decoded, resized and in memory as float32 tensors in batches of 64: what no
          pipeline that has to run this network can beat
  decode  core.pipeline.load_arrays alone (cache cleared), as the engine calls it

Goal: engine >= 0.7 of the bound.

    KERAS_HOME=../shared/weights .venv/bin/python bench/throughput.py ../shared/datasets/cats_and_dogs_small \
        [--n 500] [--rounds 5] [--size 160] [--base mobilenet_v2]
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (sets sys.path and KERAS_HOME)

import numpy as np  # noqa: E402


def sample(items: list, n: int) -> list:
    """n items spread evenly over the (class-sorted) list, so every class is in."""
    if n >= len(items):
        return list(items)
    return [items[int(i * len(items) / n)] for i in range(n)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data")
    p.add_argument("--n", type=int, default=500, help="images from the train split")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--size", type=int, default=160)
    p.add_argument("--base", default="mobilenet_v2")
    p.add_argument("--batch", type=int, default=64, help="forward batch (core.features.extract uses 64)")
    a = p.parse_args()
    info = common.header("throughput: feature-extraction pass vs bare forward pass")

    import tensorflow as tf

    from core import data, devices, features, jobs, models, pipeline

    device = devices.start_tensorflow()
    ds = data.scan(a.data)
    items = sample(ds.splits["train"], a.n)
    model = models.build_transfer(a.base, a.size, len(ds.classes))
    prefix = models.feature_model(model)  # what _train_transfer extracts for feature extraction
    job = jobs.Job(jobs.TrainConfig(data=a.data))
    print(f"{len(items)} train images of {ds.root}, {a.base} at {a.size} px, {device}", flush=True)

    def decode() -> dict:
        pipeline.DECODE_CACHE.clear()
        with common.Timer() as t:
            x, _, _ = pipeline.load_arrays(items, a.size, [], resize="crop")
        assert len(x) == len(items)
        return {"seconds": t.seconds}

    warm_forward = features.compiled_forward(prefix)

    def engine(cold: bool = False) -> dict:
        pipeline.DECODE_CACHE.clear()
        with common.Timer() as total:
            with common.Timer() as t_decode:
                x, _, _ = pipeline.load_arrays(items, a.size, [], resize="crop")
            forward = features.compiled_forward(prefix) if cold else warm_forward
            feats = features.extract(job, prefix, x, 1, None, 0, "features", batch=a.batch, forward=forward)
        assert feats[0].shape[0] == len(items)
        return {"seconds": total.seconds, "decode": t_decode.seconds,
                "forward": total.seconds - t_decode.seconds}

    images, _, _ = pipeline.load_arrays(items, a.size, [], resize="crop")
    batches = [tf.constant(images[sl].astype(np.float32)) for sl in features.batched(len(images), a.batch)]

    @tf.function(reduce_retracing=True)
    def forward(x):
        return prefix(x, training=False)

    def bound() -> dict:
        with common.Timer() as t:
            outs = [forward(b) for b in batches]
            np.asarray(outs[-1])
        return {"seconds": t.seconds}

    print("warm-up (one call of each arm, not counted)", flush=True)
    for fn in (bound, decode, engine):
        fn()
    results, loads = common.alternate({"engine": engine, "bound": bound, "decode": decode,
                                       "engine, cold": lambda: engine(cold=True)}, a.rounds)

    n = len(items)
    med = {k: common.median(common.column(v, "seconds")) for k, v in results.items()}
    eng_decode = common.median(common.column(results["engine"], "decode"))
    eng_forward = common.median(common.column(results["engine"], "forward"))
    per_round = [b["seconds"] / e["seconds"] for e, b in zip(results["engine"], results["bound"])]
    ratio = med["bound"] / med["engine"]
    rows = [
        ["engine: decode + resize + forward (load_arrays + _extract)", med["engine"], n / med["engine"],
         ratio, "≥ 0.7"],
        ["  of which load_arrays", eng_decode, n / eng_decode, "", ""],
        ["  of which _extract (forward)", eng_forward, n / eng_forward, med["bound"] / eng_forward, ""],
        ["engine, cold: the same + tracing a new compiled forward", med["engine, cold"],
         n / med["engine, cold"], med["bound"] / med["engine, cold"], ""],
        ["bound: compiled forward on in-memory float32 batches", med["bound"], n / med["bound"], 1.0, ""],
        ["decode + resize alone (load_arrays, 4 threads)", med["decode"], n / med["decode"], "", ""],
    ]
    print(f"\n{n} images, median of {a.rounds} alternated rounds; load average before the rounds: "
          f"{', '.join(map(str, loads))}\n")
    print(common.table(["arm", "seconds", "images/s", "of the bound", "goal"], rows))
    print(f"\nengine / bound, per round: {', '.join(f'{r:.3f}' for r in per_round)}; "
          f"ratio of medians {ratio:.3f} ({'met' if ratio >= 0.7 else 'NOT met'})")
    common.finish(info, images=n, size=a.size, base=a.base, device=device, rounds=a.rounds, loads=loads,
                  median_seconds=med, engine_decode_seconds=eng_decode, engine_forward_seconds=eng_forward,
                  images_per_second={k: n / v for k, v in med.items()}, ratio_engine_to_bound=ratio,
                  ratio_cold_engine_to_bound=med["bound"] / med["engine, cold"],
                  ratio_per_round=per_round, goal_met=ratio >= 0.7)


if __name__ == "__main__":
    main()
