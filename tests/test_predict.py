"""core.predict: one CSV row per file, the run's own predictions, bad files as rows with a reason."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, jpeg_bytes
from core import predict, runs
from core.images import load_image
from core.predict import PredictError, Predictor
from tiny_runs import SIZE

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def folder(tiny_run, tmp_path) -> dict:
    """The run's test images (some in a subfolder) plus three files that cannot be used."""
    root = tmp_path / "to_classify"
    (root / "more").mkdir(parents=True)
    good = []
    for i, path in enumerate(tiny_run["paths"]):
        dest = root / ("more" if i % 2 else "") / os.path.basename(path)
        shutil.copy(path, dest)
        good.append(str(dest))
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.txt").write_text("not an image")
    (root / "more" / "cut.jpg").write_bytes(jpeg_bytes((64, 64))[:300])
    (root / ".hidden.png").write_bytes(b"ignored")
    return {"root": str(root), "good": good, "bad": {"empty.jpg": "empty file", "notes.txt": "not an image",
                                                     "cut.jpg": "truncated or corrupt"}}


def expected_probs(tiny_run, paths: list[str]) -> np.ndarray:
    images = np.stack([load_image(p, SIZE) for p in paths]).astype(np.float32)
    return runs.load_model(tiny_run["run_dir"]).predict(images, verbose=0)


def read_csv(path: str) -> tuple[list[str], list[dict]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def check_rows(tiny_run, folder, rows: list[dict]) -> None:
    """One row per visible file; good ones match the model, bad ones carry their reason."""
    by_name = {os.path.basename(r["path"]): r for r in rows}
    assert len(rows) == len(folder["good"]) + len(folder["bad"]) and ".hidden.png" not in by_name
    for name, reason in folder["bad"].items():
        assert reason in by_name[name]["error"] and by_name[name]["predicted"] in ("", None)
    good = [r for r in rows if not r["error"]]
    want = expected_probs(tiny_run, [r["path"] for r in good])
    classes = tiny_run["classes"]
    for r, w in zip(good, want):
        probs = np.array([float(r[f"prob_{c}"]) for c in classes])
        np.testing.assert_allclose(probs, w, atol=1e-5)
        assert r["predicted"] == classes[int(w.argmax())]
        assert float(r["confidence"]) == pytest.approx(float(w.max()), abs=1e-5)


def test_predict_folder_rows_match_the_model_and_report_bad_files(tiny_run, folder):
    predictor = Predictor.from_run(tiny_run["run_dir"])
    seen = []
    rows = predict.predict_folder(predictor, folder["root"], progress=lambda done, total: seen.append((done, total)))
    check_rows(tiny_run, folder, rows)
    assert seen[-1] == (len(rows), len(rows))
    assert predict.summary(rows, tiny_run["classes"])["errors"] == 3


def test_predict_files_takes_uploaded_bytes(tiny_run):
    predictor = Predictor.from_run(tiny_run["run_dir"])
    path = tiny_run["paths"][0]
    rows = predict.predict_files(predictor, [("a.png", open(path, "rb").read()), ("b.png", b""),
                                             ("c.png", b"<html>")])
    assert [r["path"] for r in rows] == ["a.png", "b.png", "c.png"]
    assert rows[0]["predicted"] == tiny_run["classes"][int(expected_probs(tiny_run, [path])[0].argmax())]
    assert rows[1]["error"] == "empty file (0 bytes)" and rows[2]["error"].startswith("not an image")
    assert list(rows[0]) == predictor.columns()


def test_cli_writes_the_csv_and_prints_a_summary(tiny_run, folder, tmp_path):
    out = tmp_path / "out" / "preds.csv"
    command = [sys.executable, "-m", "core.predict", tiny_run["run_dir"], folder["root"], "--out", str(out)]
    p = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert p.returncode == 0, p.stderr[-2000:]
    result = json.loads(p.stdout.strip().splitlines()[-1])
    columns, rows = read_csv(str(out))
    assert columns == ["path", "predicted", "confidence", *[f"prob_{c}" for c in tiny_run["classes"]], "error"]
    check_rows(tiny_run, folder, rows)
    assert result["csv"] == str(out) and result["images"] == len(rows) and result["errors"] == 3
    assert sum(result["counts"].values()) == len(folder["good"])
    assert sorted(os.listdir(out.parent)) == ["preds.csv"]  # no temporary file left
    assert not [f for f in os.listdir(folder["root"]) if f.endswith(".csv")]  # nothing written into FOLDER


def test_default_csv_goes_into_the_run_folder(tiny_run, folder, capsys):
    assert predict.main([tiny_run["run_dir"], folder["root"]]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["csv"] == os.path.join(tiny_run["run_dir"], "predict", "to_classify.csv")
    assert len(read_csv(result["csv"])[1]) == result["images"]


def test_cli_errors_exit_2_with_a_sentence(tiny_run, folder, tmp_path, capsys):
    empty_run = runs.create_run(str(tmp_path / "runs"), {"strategy": "scratch", "image_size": SIZE,
                                                         "classes": ["a", "b"]})
    damaged_run = runs.create_run(str(tmp_path / "runs"), {"strategy": "scratch", "image_size": SIZE,
                                                           "classes": ["a", "b"]})
    with open(os.path.join(damaged_run, "model.keras"), "wb") as f:
        f.write(b"not a zip archive")
    (tmp_path / "nothing").mkdir()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cases = [([tiny_run["run_dir"], str(tmp_path / "missing")], "Folder not found"),
             ([tiny_run["run_dir"], str(blocker)], "Not a folder"),
             ([tiny_run["run_dir"], str(tmp_path / "nothing")], "No files in"),
             ([str(tmp_path), folder["root"]], "Not a run folder"),
             ([empty_run, folder["root"]], "has no saved model"),
             ([damaged_run, folder["root"]], "cannot be loaded: the file is damaged"),
             ([tiny_run["run_dir"], folder["root"], "--out", str(blocker / "x.csv")], "Cannot write")]
    for args, message in cases:
        assert predict.main(args) == 2, args
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_predictor_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(PredictError, match="Not a run folder"):
        Predictor.from_run(str(tmp_path))
