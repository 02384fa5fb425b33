"""Runs read from disk, shaped for the Evaluate page: the ladder table and confusion-matrix cells.

Pure functions over the core.runs.Run records that core.runs.list_runs returns.
"""
from __future__ import annotations

from core import runs
from core.jobs import STRATEGY_LABELS as STRATEGY_TITLES
from core.runs import Run

STRATEGY_LABELS = {strategy: title.lower() for strategy, title in STRATEGY_TITLES.items()}  # in a sentence


def best_val_accuracy(run: Run) -> float | None:
    """The best validation accuracy: from the result when finished, else from the history."""
    result = run.status.get("result") or {}
    if result.get("val_accuracy") is not None:
        return result["val_accuracy"]
    vals = [h["val_accuracy"] for h in run.history if h.get("val_accuracy") is not None]
    return max(vals) if vals else run.status.get("best_val_accuracy")


def state_label(run: Run) -> str:
    """'finished', 'running', … or 'damaged: metrics.json: accuracy is "high", not a number.'"""
    return f"{run.state}: {run.damaged}" if run.damaged else run.state


def ladder_row(run: Run) -> dict:
    """One line of the runs table, in the shape of PRODUCT.md's ladder."""
    config, status = run.config, run.status
    result = status.get("result") or {}
    metrics = run.metrics or {}
    epochs_run = result.get("epochs_run")
    if epochs_run is None:
        epochs_run = len([h for h in run.history if not h.get("partial")])
    seconds = result.get("seconds")
    if seconds is None and status.get("started"):
        seconds = (status.get("finished") or status.get("updated") or status["started"]) - status["started"]
    augment = " + augmentation" if config.get("augment") else ""
    return {
        "run": run.id,
        "strategy": STRATEGY_LABELS.get(config.get("strategy"), config.get("strategy") or "?") + augment,
        "base": config.get("base"),
        "image size": config.get("image_size"),
        "epochs": epochs_run,
        "time (s)": round(seconds, 1) if seconds is not None else None,
        "validation accuracy": best_val_accuracy(run),
        "test accuracy": metrics.get("accuracy"),
        "evaluated on": metrics.get("evaluated_on", "test" if metrics else None),
        "state": state_label(run),
    }


def confusion_cells(cm: list[list[int]], classes: list[str]) -> list[tuple[int, int]]:
    """Non-empty cells, mistakes first (largest first), then the diagonal."""
    cells = [(t, p) for t in range(len(classes)) for p in range(len(classes)) if cm[t][p]]
    return sorted(cells, key=lambda c: (c[0] == c[1], -cm[c[0]][c[1]], c))


def cell_label(cell: tuple[int, int], cm: list[list[int]], classes: list[str]) -> str:
    t, p = cell
    verdict = "✓" if t == p else "✗"
    return f"{verdict} {classes[t]} → {classes[p]} ({cm[t][p]})"


def predictions(run: Run) -> list[dict]:
    """The run's per-image predictions ({path, true, pred, probs}); [] when there are none, or
    when the file was damaged since the run was listed (the next listing says so)."""
    try:
        return runs.read_predictions(run.run_dir, len(run.config.get("classes") or []) or None)
    except runs.RunDamaged:
        return []


def in_cell(preds: list[dict], cell: tuple[int, int]) -> list[dict]:
    """The predictions of one confusion-matrix cell, most confident first."""
    t, p = cell
    chosen = [r for r in preds if r["true"] == t and r["pred"] == p]
    return sorted(chosen, key=lambda r: -r["probs"][p])


def probability_caption(record: dict, classes: list[str], top: int = 3) -> str:
    """'circle 0.91 · square 0.06 · triangle 0.03' (the most probable classes first)."""
    order = sorted(range(len(record["probs"])), key=lambda i: -record["probs"][i])[:top]
    return " · ".join(f"{classes[i]} {record['probs'][i]:.2f}" for i in order)
