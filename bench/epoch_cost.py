"""Epoch cost of a scratch training: augmentation, and images streamed from the files.

Arms, alternated in one process (each a real core.training.train() of the book's scratch convnet
from the JPEG files, the in-process decode cache cleared first):

  plain             no augmentation, images decoded once into memory (the fast path)
  streamed          no augmentation, a memory budget of 0 MB: every epoch decodes its images
                    from the files (what a dataset over the memory budget gets)
  PRESET-layers     augmentation as the engine did before: Keras' RandomFlip, RandomRotation,
                    RandomTranslation, RandomShear and RandomZoom, one layer (and one
                    resampling of the batch) per setting -- kept here as the baseline
  PRESET-composed   the engine's augmentation: the geometric settings composed into one
                    transform per image (core.augment.RandomAffine), one resampling

PRESET: light (the Keras blog's shear, zoom, flip) and classic (the book's rotation, shifts,
shear, zoom, flip). Reported: the median epoch time of epochs 2.. (the first one traces), the
ratio to plain, and the run's wall time.

    KERAS_HOME=../shared/weights .venv/bin/python bench/epoch_cost.py ../shared/datasets/cats_and_dogs_small \
        [--size 150] [--epochs 3] [--rounds 2] [--arms plain streamed light-layers light-composed ...]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (sets sys.path and KERAS_HOME)

ARMS = ("plain", "streamed", "light-layers", "light-composed", "classic-layers", "classic-composed")


def layers_augmentation(config, seed=None):
    """The engine's augmentation before composing: one Keras layer per geometric setting."""
    import keras
    from keras import layers

    c, steps = config, []
    if c.horizontal_flip or c.vertical_flip:
        mode = ("horizontal_and_vertical" if c.horizontal_flip and c.vertical_flip
                else "horizontal" if c.horizontal_flip else "vertical")
        steps.append(layers.RandomFlip(mode, seed=seed))
    if c.rotation:
        steps.append(layers.RandomRotation(c.rotation / 360.0, fill_mode="nearest", seed=seed))
    if c.width_shift or c.height_shift:
        steps.append(layers.RandomTranslation(c.height_shift, c.width_shift, fill_mode="nearest", seed=seed))
    if c.shear:
        steps.append(layers.RandomShear(x_factor=c.shear, y_factor=c.shear, fill_mode="nearest", seed=seed))
    if c.zoom:
        steps.append(layers.RandomZoom(c.zoom, fill_mode="nearest", seed=seed))
    return keras.Sequential(steps, name="augmentation")


def run_arm(arm: str, data_dir: str, size: int, epochs: int, runs_dir: str) -> dict:
    from core import augment, jobs, pipeline

    composed = augment.build_augmentation
    preset = arm.split("-")[0] if "-" in arm else None
    config = jobs.TrainConfig(
        data=data_dir, strategy="scratch", image_size=size, epochs=epochs, runs_dir=runs_dir,
        augment=preset is not None,
        augment_config=augment.AugmentConfig.preset(preset).to_dict() if preset else None,
        memory_budget_mb=0 if arm == "streamed" else None)
    augment.build_augmentation = layers_augmentation if arm.endswith("-layers") else composed
    pipeline.DECODE_CACHE.clear()
    job = jobs.Job(config)
    start = time.perf_counter()
    try:
        result = job.run()
    finally:
        augment.build_augmentation = composed
    if job.error:
        raise SystemExit(f"{arm}: {job.error}")
    wall = time.perf_counter() - start
    later = [e["seconds"] for e in job.epochs[1:]] or [e["seconds"] for e in job.epochs]
    return {"epoch_s": common.median(later), "wall_s": wall, "first_epoch_s": job.epochs[0]["seconds"],
            "val_accuracy": result["val_accuracy"], "test_accuracy": result["test_accuracy"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data")
    p.add_argument("--size", type=int, default=150)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    a = p.parse_args()
    info = common.header("epoch cost: augmentation and streaming")
    runs_dir = tempfile.mkdtemp(prefix="tl-epoch-cost-")
    results, loads = common.alternate(
        {arm: (lambda arm=arm: run_arm(arm, a.data, a.size, a.epochs, runs_dir)) for arm in a.arms}, a.rounds)
    base = common.median(common.column(results["plain"], "epoch_s")) if "plain" in results else None
    rows = []
    for arm in a.arms:
        r = results[arm]
        epoch = common.median(common.column(r, "epoch_s"))
        rows.append([arm, epoch, ", ".join(f"{v:.1f}" for v in common.column(r, "epoch_s")),
                     epoch / base if base else "", common.median(common.column(r, "wall_s")),
                     common.median(common.column(r, "test_accuracy"))])
    print(f"\nscratch convnet at {a.size} px, {a.epochs} epochs per arm, {a.rounds} alternated rounds; "
          f"load average before the rounds: {', '.join(map(str, loads))}\n")
    print(common.table(["arm", f"median epoch 2..{a.epochs} (s)", "per round (s)", "epoch / plain",
                        "median wall (s)", "test accuracy"], rows))
    common.finish(info, size=a.size, epochs=a.epochs, results=results, loads=loads)


if __name__ == "__main__":
    main()
