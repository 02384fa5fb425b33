"""Scale: dataset scan time and memory, and training memory, for 1k, 5k and 25k generated images.

  scan      core.data.scan (lists the folders and decodes every file to check it, on its thread
            pool): wall time and peak RSS, each measurement in a fresh subprocess; sizes
            alternated (1k 5k 25k 1k 5k 25k ...), medians
  training  python -m core.train's main() in a fresh subprocess (default: --strategy scratch
            --image-size 64 --epochs 1), once per memory budget (--budgets: "auto" is the
            engine's default, half the available memory, where these datasets are decoded once
            into memory; "0" forces streaming from the files): wall time and peak RSS, next to
            the peak RSS after importing TensorFlow and the engine (the floor), and the decoded
            dataset's size, N * S * S * 3 bytes of uint8
  stages    for the largest size, the RSS after each step of the engine's in-memory data path in
            one process (decode, tf.data pipelines, an epoch, core.metrics.evaluate on the test
            split): how many copies of the decoded data are alive

Peak RSS is the process's VmHWM (/proc/self/status); 'before' is its VmRSS then. The generated images are small JPEGs (64-200 px a side,
random sizes, smooth colour fields with noise and a shape), 5 class folders, flat layout (the
scan makes a stratified 70/15/15 split); they are made once under --work and kept.

    KERAS_HOME=../shared/weights .venv/bin/python bench/scale.py [--sizes 1000 5000 25000] \
        [--work /tmp/tl-scale] [--scan-rounds 3] [--train-args "--strategy scratch --image-size 64 --epochs 1"] \
        [--budgets auto 0]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (sets sys.path and KERAS_HOME)

CLASSES = 5


def _proc_status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise KeyError(field)


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). Not ru_maxrss: Linux carries that over from the parent
    across fork + exec, so a child of a process that imported TensorFlow would report its peak."""
    try:
        return _proc_status_mb("VmHWM")
    except (OSError, KeyError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    try:
        return _proc_status_mb("VmRSS")
    except (OSError, KeyError):
        return peak_rss_mb()


def generate(folder: str, n: int, seed: int = 0) -> str:
    """n JPEGs in folder/class_k/ (kept: a folder with a complete marker is reused)."""
    import numpy as np
    from PIL import Image, ImageDraw

    marker = os.path.join(folder, ".complete")
    if os.path.exists(marker):
        return folder
    rng = np.random.default_rng(seed)
    for k in range(CLASSES):
        os.makedirs(os.path.join(folder, f"class_{k}"), exist_ok=True)
    for i in range(n):
        k = i % CLASSES
        w, h = (int(v) for v in rng.integers(64, 201, 2))
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.array([40 + 40 * k, 200 - 30 * k, 120], np.float32)
        img = (base + 60 * np.sin(xx[..., None] / (8 + k) + rng.random(3) * 6)
               + 40 * np.cos(yy[..., None] / 11) + rng.normal(0, 12, (h, w, 3)))
        pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
        x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
        ImageDraw.Draw(pil).ellipse([x0, y0, x0 + w // 3, y0 + h // 3], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        pil.save(os.path.join(folder, f"class_{k}", f"img_{i:06d}.jpg"), quality=85)
    open(marker, "w").close()
    return folder


def child_scan(folder: str) -> dict:
    from core import data

    floor = rss_mb()
    start = time.perf_counter()
    ds = data.scan(folder)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "floor_rss_mb": floor,
            "files": sum(len(v) for v in ds.splits.values()), "skipped": len(ds.skipped)}


def child_train(folder: str, train_args: list[str], runs_dir: str) -> dict:
    import contextlib
    import io

    import tensorflow  # noqa: F401  (imported before the floor is read: the floor includes it)

    from core import train, training  # noqa: F401  (the engine, imported before the floor is read)

    floor = rss_mb()
    out = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = train.main(["--data", folder, "--runs-dir", runs_dir] + train_args)
    seconds = time.perf_counter() - start
    lines = [l for l in out.getvalue().splitlines() if l.startswith("{")]
    result = json.loads(lines[-1]) if lines else {}
    return {"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "floor_rss_mb": floor, "exit": code,
            "test_accuracy": result.get("test_accuracy"), "error": result.get("error")}


def child_stages(folder: str, size: int) -> dict:
    """RSS (VmRSS) after each step of the engine's data path for a scratch training, in one process:
    where the bytes of the decoded dataset go, and how many copies of it are alive."""
    import keras
    import tensorflow  # noqa: F401  (imported before the first reading)

    from core import data, metrics, pipeline

    stages = [("TensorFlow and the engine imported", rss_mb())]
    ds = data.scan(folder)
    stages.append(("core.data.scan", rss_mb()))
    sets = {s: pipeline.load_arrays(ds.splits[s], size, []) for s in ("train", "validation", "test")}
    stages.append(("load_arrays: train, validation, test decoded to uint8", rss_mb()))
    (x, y, _), (xv, yv, _), (xt, _, _) = sets["train"], sets["validation"], sets["test"]
    train_ds = pipeline.make_tf_dataset(x, y, 32, shuffle=True, seed=0)
    val_ds = pipeline.make_tf_dataset(xv, yv, 32)
    stages.append(("make_tf_dataset: train (shuffled) and validation pipelines built", rss_mb()))
    next(iter(train_ds))
    stages.append(("first training batch (the shuffle buffer holds indices)", rss_mb()))
    for _ in train_ds:
        pass
    for _ in val_ds:
        pass
    stages.append(("one epoch of train and validation iterated", rss_mb()))
    tiny = keras.Sequential([keras.Input((size, size, 3)), keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(CLASSES, activation="softmax")])
    metrics.evaluate(tiny, xt, sets["test"][1], sets["test"][2], ds.classes)
    stages.append(("core.metrics.evaluate on the test split (batch by batch)", rss_mb()))
    return {"stages": stages, "peak_rss_mb": peak_rss_mb(),
            "uint8_mb": {k: v[0].nbytes / 1024 ** 2 for k, v in sets.items()}}


def run_child(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child"] + args,
                          capture_output=True, text=True, cwd=common.ROOT)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-3000:])
        raise SystemExit(f"child failed: {args}")
    return json.loads(lines[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, folder = sys.argv[2], sys.argv[3]
        if kind == "scan":
            res = child_scan(folder)
        elif kind == "stages":
            res = child_stages(folder, int(sys.argv[4]))
        else:
            res = child_train(folder, shlex.split(sys.argv[4]), sys.argv[5])
        print(json.dumps(res))
        return

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 25000])
    p.add_argument("--work", default="/tmp/tl-scale", help="generated images go here (kept)")
    p.add_argument("--scan-rounds", type=int, default=3)
    p.add_argument("--train-rounds", type=int, default=1)
    p.add_argument("--train-args", default="--strategy scratch --image-size 64 --epochs 1")
    p.add_argument("--budgets", nargs="+", default=["auto", "0"],
                   help="memory budgets (MB) to train under; auto = the engine's default")
    a = p.parse_args()
    info = common.header("scale: scan and training memory")

    folders = {}
    for n in a.sizes:
        with common.Timer() as t:
            folders[n] = generate(os.path.join(a.work, f"images-{n}"), n, seed=n)
        print(f"{n} images in {folders[n]} ({t.seconds:.1f} s to generate or find)", flush=True)

    scans, scan_loads = common.alternate(
        {f"scan {n}": (lambda n=n: run_child(["scan", folders[n]])) for n in a.sizes}, a.scan_rounds)
    runs_dir = os.path.join(a.work, "runs")
    def train_args(budget: str) -> str:
        return a.train_args + ("" if budget == "auto" else f" --memory-budget-mb {budget}")

    trains, train_loads = common.alternate(
        {f"train {n} {b}": (lambda n=n, b=b: run_child(["train", folders[n], train_args(b), runs_dir]))
         for n in a.sizes for b in a.budgets}, a.train_rounds)

    size = int(shlex.split(a.train_args)[shlex.split(a.train_args).index("--image-size") + 1]) \
        if "--image-size" in a.train_args else 160
    scan_rows, train_rows, peaks = [], [], {}
    for n in a.sizes:
        s = scans[f"scan {n}"]
        sec = common.median(common.column(s, "seconds"))
        peak = common.median(common.column(s, "peak_rss_mb"))
        floor = common.median(common.column(s, "floor_rss_mb"))
        scan_rows.append([n, sec, n / sec, floor, peak, peak - floor, (peak - floor) * 1024 / n])
    for b in a.budgets:
        for n in a.sizes:
            tr = trains[f"train {n} {b}"]
            decoded = n * size * size * 3 / 1024 ** 2
            tpeak = common.median(common.column(tr, "peak_rss_mb"))
            tfloor = common.median(common.column(tr, "floor_rss_mb"))
            peaks[b, n] = tpeak
            train_rows.append([b, n, common.median(common.column(tr, "seconds")), tfloor, tpeak, tpeak - tfloor,
                               decoded, (tpeak - tfloor) / decoded, tr[0]["test_accuracy"]])
    print(f"\nscan: median of {a.scan_rounds} alternated rounds, each in a fresh process; "
          f"load average before the rounds: {', '.join(map(str, scan_loads))}\n")
    print(common.table(["images", "scan (s)", "images/s", "RSS before (MB)", "peak RSS (MB)",
                        "peak - before (MB)", "KB per image"], scan_rows))
    print(f"\ntraining: python -m core.train {a.train_args}, fresh process, {a.train_rounds} round(s); "
          f"load average before: {', '.join(map(str, train_loads))}\n")
    print(common.table(["budget (MB)", "images", "wall (s)", "RSS after imports (MB)", "peak RSS (MB)",
                        "peak - imports (MB)", f"decoded uint8 N·{size}²·3 (MB)", "(peak - imports) / decoded",
                        "test accuracy"], train_rows))
    slope = {}
    if len(a.sizes) >= 2:
        n0, n1 = a.sizes[0], a.sizes[-1]
        for b in a.budgets:
            slope[b] = (peaks[b, n1] - peaks[b, n0]) * 1024 ** 2 / (n1 - n0)
            print(f"budget {b}: peak RSS grows by {slope[b] / 1024:.1f} KB per image between {n0} and {n1} "
                  f"images; one decoded image is {size * size * 3 / 1024:.1f} KB (uint8): "
                  f"{slope[b] / (size * size * 3):.2f} copies of the dataset")
    n = max(a.sizes)
    stages = run_child(["stages", folders[n], str(size)])
    mb = stages["uint8_mb"]
    print(f"\nwhere the memory goes, {n} images at {size} px, one process (VmRSS after each step; decoded "
          f"uint8: train {mb['train']:.0f} MB, validation {mb['validation']:.0f} MB, test {mb['test']:.0f} MB, "
          f"all {sum(mb.values()):.0f} MB)\n")
    rows, prev = [], None
    for name, value in stages["stages"]:
        rows.append([name, value, "" if prev is None else value - prev,
                     "" if prev is None else (value - prev) / sum(mb.values())])
        prev = value
    print(common.table(["step", "RSS (MB)", "added (MB)", "added / all decoded uint8"], rows))
    print(f"peak RSS of that process: {stages['peak_rss_mb']:.0f} MB")
    common.finish(info, train_args=a.train_args, scan=scans, scan_loads=scan_loads, train=trains,
                  train_loads=train_loads, bytes_per_image_slope=slope, image_size=size, stages=stages)


if __name__ == "__main__":
    main()
