"""core.runs: atomic files, history that survives a kill, interrupted runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from core import runs


def test_create_list_and_read_runs(tmp_path):
    d = runs.create_run(str(tmp_path), {"strategy": "scratch", "base": "scratch"})
    d2 = runs.create_run(str(tmp_path), {"strategy": "scratch", "base": "scratch"})
    assert d != d2  # same second, still two folders
    runs.append_history(d, {"epoch": 1, "loss": 0.5})
    runs.write_status(d, state=runs.FINISHED)
    listed = {r.run_dir: r for r in runs.list_runs(str(tmp_path))}
    assert listed[d].state == "finished" and listed[d].history == [{"epoch": 1, "loss": 0.5}]
    assert listed[d2].state == "interrupted"  # 'running' with our pid but no active job


def test_a_run_of_a_killed_process_reads_as_interrupted_with_its_history(tmp_path):
    code = ("import sys; sys.path.insert(0, %r); from core import runs; d = runs.create_run(%r, {'strategy': 's'});"
            "runs.append_history(d, {'epoch': 1}); print(d)") % (os.getcwd(), str(tmp_path))
    d = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(d, "history.jsonl"), "a") as f:
        f.write('{"epoch": 2, "lo')  # a line cut in the middle by the kill
    run = runs.read_run(d)
    assert run.state == "interrupted" and run.history == [{"epoch": 1}]


def test_write_json_is_atomic(tmp_path):
    path = str(tmp_path / "x.json")
    runs.write_json(path, {"a": 1})
    runs.write_json(path, {"a": 2})
    assert json.load(open(path)) == {"a": 2}
    assert os.listdir(tmp_path) == ["x.json"]  # no temp file left behind


def test_loading_a_run_without_a_model_says_why(tmp_path):
    d = runs.create_run(str(tmp_path), {"strategy": "scratch"})
    try:
        runs.load_model(d)
    except FileNotFoundError as e:
        assert "no saved model" in str(e)
    else:
        raise AssertionError("expected FileNotFoundError")
