"""The small-data ladder: each rung trained by the real CLI, one table next to the published figures.

Rungs (each a fresh `python -m core.train` process; its last stdout line is the result JSON):

  scratch        --strategy scratch --image-size 150                       (book: 30 epochs)
  scratch-aug    --strategy scratch --augment --image-size 150             (book: 100 epochs)
  features       --strategy feature-extraction --base mobilenet_v2 --image-size 160
  features-aug   the same with --augment (4 augmented views per image cached)
  fine-tune      --strategy fine-tune --base mobilenet_v2 --image-size 160

Published figures (cats vs dogs, 2,000 training images): Deep Learning with Python §5.2-5.3
(VGG16 at 150 px for the transfer rungs): 71 % / 82 % / 90 % (features) - 96 % (features with
augmentation) / 97 %; the Keras blog "Building powerful image classification models using very
little data" (2016): 80 % (small convnet, with augmentation) / 90 % (bottleneck features) / 94 %
(fine-tuning). The book and blog report validation accuracy; we report both validation (best
epoch) and test (held-out test split, the saved best model).

A rung trained elsewhere (e.g. a 100-epoch scratch run) joins the table with
--from-run RUNG=RUN_DIR: its config.json, status.json, history.jsonl and metrics.json are read,
and the row says so (and whether the run is still going).

    KERAS_HOME=../shared/weights .venv/bin/python bench/ladder.py ../shared/datasets/cats_and_dogs_small \
        [--rungs features,features-aug,fine-tune] [--epochs-scratch 30] [--from-run scratch-aug=RUN_DIR] \
        [--runs-dir /tmp/tl-ladder]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (sets sys.path and KERAS_HOME)

RUNGS = {
    "scratch": ["--strategy", "scratch", "--image-size", "150"],
    "scratch-aug": ["--strategy", "scratch", "--augment", "--image-size", "150"],
    "features": ["--strategy", "feature-extraction", "--base", "mobilenet_v2", "--image-size", "160"],
    "features-aug": ["--strategy", "feature-extraction", "--augment", "--base", "mobilenet_v2", "--image-size", "160"],
    "fine-tune": ["--strategy", "fine-tune", "--base", "mobilenet_v2", "--image-size", "160"],
}
DEFAULT_EPOCHS = {"scratch": 30, "scratch-aug": 100}  # the book's; the others use the engine's defaults
BOOK = {"scratch": "71 %", "scratch-aug": "82 %", "features": "90 %", "features-aug": "96 %", "fine-tune": "97 %"}
BLOG = {"scratch": "—", "scratch-aug": "80 %", "features": "90 %", "features-aug": "—", "fine-tune": "94 %"}


def augmentation(cfg: dict) -> str:
    """The augmentation a run used, short: 'rotation 40, shear 0.2, ... (4 views)' or 'none'."""
    if not cfg.get("augment"):
        return "none"
    parts = [f"{k.replace('_', ' ')}" + ("" if v is True else f" {v:g}")
             for k, v in (cfg.get("augment_config") or {}).items() if v]
    views = f" ({cfg.get('views')} views)" if cfg.get("strategy") != "scratch" else ""
    return ", ".join(parts) + views


def rung_from_run(run_dir: str) -> dict:
    """A row's figures read from a run folder trained elsewhere."""
    from core import runs

    run = runs.read_run(run_dir)
    cfg, status, hist, metrics = run["config"], run["status"], run["history"], run["metrics"] or {}
    done = [h for h in hist if not h.get("partial")]
    vals = [h["val_accuracy"] for h in done if h.get("val_accuracy") is not None]
    planned = (cfg.get("epochs") or 0) + (cfg.get("fine_tune_epochs") or 0)
    result = status.get("result") or {}
    seconds = result.get("seconds")
    if seconds is None:
        seconds = sum(h.get("seconds") or 0 for h in hist)  # training epochs only (no validation, decode)
        timing = "sum of epoch times so far"
    else:
        timing = "whole run"
    return {"base": cfg.get("base"), "image_size": cfg.get("image_size"),
            "epochs": f"{len(done)}/{planned}", "seconds": seconds, "timing": timing,
            "val_accuracy": max(vals) if vals else None, "test_accuracy": metrics.get("accuracy"),
            "source": f"from run {os.path.basename(os.path.normpath(run_dir))} ({run['state']})",
            "augmentation": augmentation(cfg),
            "run_dir": run_dir, "state": run["state"]}


def run_rung(data: str, rung: str, epochs: int | None, runs_dir: str, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "core.train", "--data", data, "--runs-dir", runs_dir] + RUNGS[rung] + extra
    if epochs is not None:
        cmd += ["--epochs", str(epochs)]
    print(f"[{common.now_utc()}] {rung}: {' '.join(cmd[1:])}  (load {common.load1()})", flush=True)
    load0 = common.load1()
    res, wall, proc = common.run_cli(cmd)
    if res is None:
        raise SystemExit(f"rung {rung} failed (exit {proc.returncode})")
    from core import runs

    planned = runs.read_json(os.path.join(res["run_dir"], "config.json"), {})
    planned_epochs = (planned.get("epochs") or 0) + (planned.get("fine_tune_epochs") or 0)
    row = {"base": res["base"], "image_size": res["image_size"], "epochs": f"{res['epochs_run']}/{planned_epochs}",
           "seconds": wall, "engine_seconds": res["seconds"], "timing": "whole process",
           "val_accuracy": res["val_accuracy"], "test_accuracy": res["test_accuracy"],
           "source": "run here", "run_dir": res["run_dir"], "load_before_after": [load0, common.load1()],
           "augmentation": augmentation(planned)}
    print(f"    {json.dumps(row)}", flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data")
    p.add_argument("--rungs", default="scratch,scratch-aug,features,features-aug,fine-tune",
                   help="comma-separated, from: " + ", ".join(RUNGS))
    for rung in RUNGS:
        p.add_argument(f"--epochs-{rung}", type=int, default=DEFAULT_EPOCHS.get(rung),
                       help=f"epochs of the {rung} rung" + (" (the head phase)" if rung == "fine-tune" else ""))
    p.add_argument("--fine-tune-epochs", type=int, help="epochs of the fine-tune phase (engine default 10)")
    p.add_argument("--from-run", action="append", default=[], metavar="RUNG=RUN_DIR",
                   help="take a rung from a run trained elsewhere instead of training it")
    p.add_argument("--runs-dir", default="/tmp/tl-ladder")
    a = p.parse_args()
    rungs = [r.strip() for r in a.rungs.split(",") if r.strip()]
    from_run = dict(item.split("=", 1) for item in a.from_run)
    for r in rungs + list(from_run):
        if r not in RUNGS:
            p.error(f"unknown rung '{r}': choose from {', '.join(RUNGS)}")
    for r, d in from_run.items():
        if not os.path.exists(os.path.join(d, "config.json")):
            p.error(f"--from-run {r}={d}: not a run folder (no config.json)")
    info = common.header("the small-data ladder")

    rows = {}
    for rung in RUNGS:
        if rung in from_run:
            rows[rung] = rung_from_run(from_run[rung])
        elif rung in rungs:
            extra = ["--fine-tune-epochs", str(a.fine_tune_epochs)] if rung == "fine-tune" and a.fine_tune_epochs else []
            rows[rung] = run_rung(a.data, rung, getattr(a, f"epochs_{rung.replace('-', '_')}"), a.runs_dir, extra)

    def pct(v):
        return "—" if v is None else f"{100 * v:.1f} %"

    table = [[rung, r["base"], r["image_size"], r["augmentation"], r["epochs"], f"{r['seconds']:.0f}", pct(r["val_accuracy"]),
              pct(r["test_accuracy"]), BOOK[rung], BLOG[rung], r["source"]] for rung, r in rows.items()]
    print()
    print(common.table(["rung", "base", "px", "augmentation", "epochs run / planned", "wall (s)", "val acc (best)",
                        "test acc", "DLwP §5.2–5.3", "Keras blog", "source"], table))
    print("\nwall: the whole process (decode, features, training, saving, test evaluation) for rungs run "
          "here; for a finished run from elsewhere, the engine's own total (the same minus Python and "
          "TensorFlow start-up); for one still going (or killed), the sum of its epoch times so far.")
    common.finish(info, rows=rows)


if __name__ == "__main__":
    main()
