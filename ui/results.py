"""Runs read from disk, shaped for the Evaluate page: the ladder table and confusion-matrix cells.

Pure functions over the core.runs.Run records that core.runs.list_runs returns; the words in the
cells (strategy, state, split) are in the session's language (ui.i18n), the numbers stay numbers.
"""
from __future__ import annotations

import os

from core import runs
from core.runs import Run
from ui import cache
from ui.i18n import N_, fmt_int, fmt_pct, t, tm

# core.jobs.STRATEGY_LABELS as they read inside a sentence or a table cell ("feature extraction +
# augmentation"): their own catalog entries, since a translation may differ from the title's.
STRATEGY_LABELS = {"scratch": N_("from scratch"), "feature-extraction": N_("feature extraction"),
                   "fine-tune": N_("fine-tuning")}
# The runs table's columns (the keys of ladder_row) and their headers.
# The accuracies come right after the run's name and dataset: they are what the table is read for,
# and they stay on screen at 1280 px.
LADDER_HEADERS = {"run": N_("run"), "dataset": N_("dataset"), "test accuracy": N_("test accuracy"),
                  "validation accuracy": N_("validation accuracy"), "recipe": N_("recipe"),
                  "published": N_("published"), "difference": N_("difference (points)"), "strategy": N_("strategy"),
                  "base": N_("base"), "image size": N_("image size"), "epochs": N_("epochs"),
                  "time (s)": N_("time (s)"), "evaluated on": N_("evaluated on"), "state": N_("state")}
PERCENT_COLUMNS = ("test accuracy", "validation accuracy", "published")
MISSING = "—"  # an empty cell: no test yet, a failed run, …


def best_val_accuracy(run: Run) -> float | None:
    """The best validation accuracy: from the result when finished, else from the history."""
    result = run.status.get("result") or {}
    if result.get("val_accuracy") is not None:
        return result["val_accuracy"]
    vals = [h["val_accuracy"] for h in run.history if h.get("val_accuracy") is not None]
    return max(vals) if vals else run.status.get("best_val_accuracy")


def strategy_label(strategy: str | None, augment: bool = False) -> str:
    """'feature extraction', or 'feature extraction + augmentation', in the session's language."""
    label = t(STRATEGY_LABELS[strategy]) if strategy in STRATEGY_LABELS else strategy or "?"
    return t("{strategy} + augmentation", strategy=label) if augment else label


def state_label(run: Run) -> str:
    """'finished', 'running', … or 'damaged: metrics.json: accuracy is "high", not a number.'"""
    return t("damaged: {why}", why=tm(run.damaged)) if run.damaged else t(run.state)


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
    evaluated_on = metrics.get("evaluated_on", "test" if metrics else None)
    return {
        "run": run.name,
        "dataset": dataset_name(config.get("data")),
        "strategy": strategy_label(config.get("strategy"), bool(config.get("augment"))),
        "base": config.get("base"),
        "image size": config.get("image_size"),
        "epochs": epochs_run,
        "time (s)": round(seconds, 1) if seconds is not None else None,
        "validation accuracy": best_val_accuracy(run),
        "test accuracy": metrics.get("accuracy"),
        **recipe_columns(config.get("recipe"), metrics.get("accuracy")),
        "evaluated on": t(evaluated_on) if evaluated_on else None,
        "state": state_label(run),
    }


def recipe_of(name: str | None):
    """The core.recipes.Recipe a run started from; None for a run without one, or of a recipe this
    version no longer has."""
    from core import recipes
    return recipes.RECIPES.get(name) if name else None


def recipe_columns(name: str | None, ours: float | None) -> dict:
    """The recipe a run started from, its published figure and ours minus it, in percentage points."""
    recipe = recipe_of(name)
    if recipe is None:
        return {"recipe": name, "published": None, "difference": None}
    difference = None if ours is None else round(100 * (ours - recipe.accuracy), 1)
    return {"recipe": t(recipe.title), "published": recipe.accuracy,
            "difference": None if difference is None else f"{difference:+.1f}"}


def dataset_name(path: str | None) -> str | None:
    """The dataset's folder name ('cats_and_dogs_small'), or 'built-in sample'."""
    if not path:
        return None
    if os.path.realpath(path) == os.path.realpath(cache.sample_folder()):
        return t("built-in sample")
    return os.path.basename(os.path.normpath(path))


def shown_row(row: dict) -> dict:
    """A runs-table row as it reads: percentages in one format, an empty cell as a dash (never None)."""
    return {k: MISSING if v is None else fmt_pct(v, 1) if k in PERCENT_COLUMNS else v for k, v in row.items()}


def short_label(run: Run) -> str:
    """A run's name for a chart legend: the name a person gave it, or its start time and strategy
    ('12:45:03 feature extraction'), since run ids are too long for a legend."""
    if run.label:
        return run.label
    stamp = run.id.split("-")
    when = f"{stamp[1][:2]}:{stamp[1][2:4]}:{stamp[1][4:6]}" if len(stamp) > 1 and len(stamp[1]) >= 6 else run.id
    return f"{when} {strategy_label(run.config.get('strategy'), bool(run.config.get('augment')))}"


def confusion_cells(cm: list[list[int]], classes: list[str]) -> list[tuple[int, int]]:
    """Non-empty cells, mistakes first (largest first), then the diagonal."""
    n = len(classes)
    cells = [(true, pred) for true in range(n) for pred in range(n) if cm[true][pred]]
    return sorted(cells, key=lambda c: (c[0] == c[1], -cm[c[0]][c[1]], c))


def cell_label(cell: tuple[int, int], cm: list[list[int]], classes: list[str]) -> str:
    """'✗ cat → dog (3)': right or wrong, true → predicted class, how many images."""
    true, pred = cell
    verdict = "✓" if true == pred else "✗"
    return f"{verdict} {classes[true]} → {classes[pred]} ({fmt_int(cm[true][pred])})"


def predictions(run: Run) -> list[dict]:
    """The run's per-image predictions ({path, true, pred, probs}); [] when there are none, or
    when the file was damaged since the run was listed (the next listing says so)."""
    try:
        return runs.read_predictions(run.run_dir, len(run.config.get("classes") or []) or None)
    except runs.RunDamaged:
        return []


def in_cell(preds: list[dict], cell: tuple[int, int]) -> list[dict]:
    """The predictions of one confusion-matrix cell, most confident first."""
    true, pred = cell
    chosen = [r for r in preds if r["true"] == true and r["pred"] == pred]
    return sorted(chosen, key=lambda r: -r["probs"][pred])


def probability_caption(record: dict, classes: list[str], top: int = 3) -> str:
    """'circle 0.91 · square 0.06 · triangle 0.03' (the most probable classes first)."""
    order = sorted(range(len(record["probs"])), key=lambda i: -record["probs"][i])[:top]
    return " · ".join(f"{classes[i]} {record['probs'][i]:.2f}" for i in order)
