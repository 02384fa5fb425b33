"""Recipes against their published figures: each recipe trained by the real CLI
(`python -m core.train --recipe NAME`), one table of published vs ours.

Ours is reported on the validation split (the best epoch, what the book, the blog and the
tutorial report) and on the held-out test split (the saved best model). Extra flags after `--`
go to every training and are recorded in the run as changes from the recipe (e.g. fewer epochs
for a smoke test).

    KERAS_HOME=../shared/weights .venv/bin/python bench/recipes.py ../shared/datasets/cats_and_dogs_small \
        --recipe dlwp-5.2-scratch [--recipe tf-tutorial ...] [--runs-dir /tmp/tl-recipes] [-- --epochs 1]
    .venv/bin/python bench/recipes.py --list
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (sets sys.path and KERAS_HOME)

from core import recipes  # noqa: E402


def run_recipe(data: str, name: str, runs_dir: str, extra: list[str]) -> dict:
    """One recipe through the CLI: its result row (published and ours)."""
    recipe = recipes.get(name)
    cmd = [sys.executable, "-m", "core.train", "--recipe", name, "--data", data, "--runs-dir", runs_dir] + extra
    print(f"[{common.now_utc()}] {name}: {' '.join(cmd[1:])}  (load {common.load1()})", flush=True)
    if recipe.weights_problem():
        print(f"    note: {recipe.weights_problem()}", flush=True)
    res, wall, proc = common.run_cli(cmd)
    if res is None:
        return {"recipe": name, "error": (proc.stderr.strip().splitlines() or ["failed"])[-1], "seconds": wall,
                "published": recipe.accuracy, "published_on": recipe.published_on}
    from core import runs

    config = runs.read_json(os.path.join(res["run_dir"], "config.json"), {})
    ours = res["val_accuracy"] if recipe.published_on == "validation" else res["test_accuracy"]
    row = {"recipe": name, "version": recipe.version, "published": recipe.accuracy,
           "published_on": recipe.published_on, "published_steps": [p.accuracy for p in recipe.published],
           "val_accuracy": res["val_accuracy"], "test_accuracy": res["test_accuracy"],
           "difference": None if ours is None else ours - recipe.accuracy, "epochs_run": res["epochs_run"],
           "seconds": wall, "engine_seconds": res["seconds"], "changes": config.get("recipe_changes"),
           "run_dir": res["run_dir"]}
    print(f"    {json.dumps(row)}", flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", nargs="?")
    p.add_argument("--recipe", action="append", default=[], help="a recipe name (repeat for several)")
    p.add_argument("--list", action="store_true", help="print the recipes and exit")
    p.add_argument("--runs-dir", default="/tmp/tl-recipes")
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    a = p.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    if a.list:
        print(recipes.listing())
        return
    if not a.data or not a.recipe:
        p.error("give a dataset folder and at least one --recipe (--list shows them)")
    for name in a.recipe:
        if name not in recipes.RECIPES:
            p.error(f"unknown recipe '{name}': choose from {', '.join(recipes.RECIPES)}")
    info = common.header("recipes against their published figures")
    rows = [run_recipe(a.data, name, a.runs_dir, extra) for name in a.recipe]

    def pct(v):
        return "—" if v is None else f"{100 * v:.1f} %"

    table = [[r["recipe"], " / ".join(pct(x) for x in r.get("published_steps", [r["published"]])),
              r["published_on"], pct(r.get("val_accuracy")), pct(r.get("test_accuracy")),
              "—" if r.get("difference") is None else f"{100 * r['difference']:+.1f}",
              f"{r['seconds']:.0f}", ", ".join(r.get("changes") or []) or r.get("error", "none")] for r in rows]
    print()
    print(common.table(["recipe", "published", "published on", "ours: val (best)", "ours: test",
                        "ours − published (points)", "wall (s)", "changed from the recipe"], table))
    common.finish(info, rows=rows, extra_flags=extra)


if __name__ == "__main__":
    main()
