"""Engine overhead: the same training through our job machinery and as a bare model.fit script.

Two arms, alternated in one process (A B A B ...), each from the JPEG files to a test accuracy:

  job   core.jobs.JobRegistry().start(TrainConfig(strategy="scratch", ...)): the real path --
        a background thread, the callback publishing every batch and epoch, validation and
        checkpointing each epoch, history.jsonl / status.json / model.keras written to disk, the
        best model reloaded and evaluated, metrics and predictions written; the main thread polls
        job.snapshot() once a second, as the dashboard's Train page does.
  bare  what one would write by hand with the same functions and settings: core.data.scan and
        load_arrays, core.models.build_scratch, the same tf.data pipeline
        (core.pipeline.make_tf_dataset), model.fit(validation_data=...) with a ModelCheckpoint
        (best validation accuracy), the best model reloaded, predict on the test split.

Both decode from scratch (load_arrays' in-process cache is cleared before each arm), same seed,
model (the book's scratch convnet), image size, epochs and batch size. Goal: job / bare <= 1.05
(ratio of median wall times). Each arm's CPU time (time.process_time(), all threads) is reported
too: on a shared machine it moves far less than wall time with other people's load.

    KERAS_HOME=../shared/weights .venv/bin/python bench/overhead.py ../shared/datasets/cats_and_dogs_small \
        [--per-class 250] [--size 64] [--epochs 5] [--rounds 5]
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

import numpy as np  # noqa: E402


def subset(data: str, per_class: int, dest: str) -> str:
    """dest/{train,validation,test}/CLASS/ with copies of the first files of a split dataset:
    per_class per class in train, per_class // 2 in validation and test. Copies, not links: a
    link out of its class folder is skipped by the scan (docs/RELIABILITY.md)."""
    for split, n in (("train", per_class), ("validation", per_class // 2), ("test", per_class // 2)):
        for cls in sorted(os.listdir(os.path.join(data, split))):
            src = os.path.join(data, split, cls)
            os.makedirs(os.path.join(dest, split, cls), exist_ok=True)
            for name in sorted(os.listdir(src))[:n]:
                shutil.copyfile(os.path.join(src, name), os.path.join(dest, split, cls, name))
    return dest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", help="a dataset with train/validation/test folders")
    p.add_argument("--per-class", type=int, default=250, help="train images per class (half that in "
                   "validation and test); 0 = the whole dataset")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=5)
    a = p.parse_args()
    info = common.header("overhead: job machinery vs bare model.fit")

    import keras

    from core import data, devices, jobs, models, pipeline

    device = devices.start_tensorflow()
    work = tempfile.mkdtemp(prefix="tl-overhead-")
    root = subset(a.data, a.per_class, os.path.join(work, "data")) if a.per_class else a.data
    seed = 0

    def job_arm() -> dict:
        pipeline.DECODE_CACHE.clear()
        runs_dir = os.path.join(work, "runs")
        cpu0 = time.process_time()
        with common.Timer() as t:
            job = jobs.JobRegistry().start(jobs.TrainConfig(
                data=root, strategy="scratch", image_size=a.size, epochs=a.epochs,
                batch_size=a.batch_size, seed=seed, runs_dir=runs_dir))
            while job.thread.is_alive():
                job.snapshot()  # the Train page's poll
                job.thread.join(1.0)
        if job.error:
            raise SystemExit(f"job failed: {job.error}")
        shutil.rmtree(runs_dir)
        return {"seconds": t.seconds, "cpu_seconds": time.process_time() - cpu0,
                "test_accuracy": job.result["test_accuracy"], "epochs": len(job.epochs)}

    def bare_arm() -> dict:
        pipeline.DECODE_CACHE.clear()
        path = os.path.join(work, "bare-best.keras")
        cpu0 = time.process_time()
        with common.Timer() as t:
            keras.utils.set_random_seed(seed)
            ds = data.scan(root, seed=seed)
            (x, y, _), (xv, yv, _), (xt, yt, _) = (
                pipeline.load_arrays(ds.splits[s], a.size, [], resize="crop") for s in ("train", "validation", "test"))
            model = models.build_scratch(a.size, len(ds.classes), 0.5)
            model.compile(keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            history = model.fit(pipeline.make_tf_dataset(x, y, a.batch_size, shuffle=True, seed=seed),
                                validation_data=pipeline.make_tf_dataset(xv, yv, a.batch_size),
                                epochs=a.epochs, verbose=0, callbacks=[keras.callbacks.ModelCheckpoint(
                                    path, monitor="val_accuracy", save_best_only=True)])
            best = keras.saving.load_model(path)
            probs = best.predict(xt.astype(np.float32), batch_size=a.batch_size, verbose=0)
        os.remove(path)
        return {"seconds": t.seconds, "cpu_seconds": time.process_time() - cpu0,
                "test_accuracy": float((probs.argmax(1) == yt).mean()),
                "epochs": len(history.history["loss"])}

    try:
        print("warm-up (one call of each arm, not counted)", flush=True)
        for fn in (bare_arm, job_arm):
            fn()
        results, loads = common.alternate({"job": job_arm, "bare": bare_arm}, a.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = {k: common.median(common.column(v, "seconds")) for k, v in results.items()}
    cpu = {k: common.median(common.column(v, "cpu_seconds")) for k, v in results.items()}
    per_round = [j["seconds"] / b["seconds"] for j, b in zip(results["job"], results["bare"])]
    ratio = med["job"] / med["bare"]
    cpu_ratio = cpu["job"] / cpu["bare"]
    rows = [[name, med[name], ", ".join(f"{r['seconds']:.1f}" for r in results[name]),
             ratio if name == "job" else 1.0, cpu[name],
             ", ".join(f"{r['cpu_seconds']:.1f}" for r in results[name]),
             cpu_ratio if name == "job" else 1.0,
             ", ".join(sorted({f"{r['test_accuracy']:.3f}" for r in results[name]}))] for name in ("job", "bare")]
    print(f"\nscratch convnet at {a.size} px, {a.epochs} epochs, batch {a.batch_size}, "
          f"{a.per_class or 'all'} train images per class; median of {a.rounds} alternated rounds; "
          f"load average before the rounds: {', '.join(map(str, loads))}\n")
    print(common.table(["arm", "median wall (s)", "wall per round (s)", "wall job / bare", "median CPU (s)",
                        "CPU per round (s)", "CPU job / bare", "test accuracy"], rows))
    print(f"\njob / bare wall per round: {', '.join(f'{r:.3f}' for r in per_round)}; ratio of medians "
          f"{ratio:.3f} (goal <= 1.05: {'met' if ratio <= 1.05 else 'NOT met'}); CPU-time ratio {cpu_ratio:.3f}")
    common.finish(info, device=device, size=a.size, epochs=a.epochs, batch_size=a.batch_size,
                  per_class=a.per_class, rounds=a.rounds, loads=loads, median_seconds=med,
                  median_cpu_seconds=cpu, ratio_job_to_bare=ratio, cpu_ratio_job_to_bare=cpu_ratio,
                  ratio_per_round=per_round, results=results,
                  goal_met=ratio <= 1.05)


if __name__ == "__main__":
    main()
