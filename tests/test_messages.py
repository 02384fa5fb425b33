"""The engine's sentences carry their message id and parameters (so the dashboard can show them in
the reader's language), while their English stays what the command line and the files say."""
from __future__ import annotations

import glob
import os
import subprocess
import sys

import pytest
from babel.messages.extract import extract_from_file

from conftest import ROOT
from core import runs
from core.jobs import Job, LogLine, TrainConfig
from core.messages import Message


def code_catalog() -> set[str]:
    """Every msgid marked in core/ (what scripts/i18n.sh extracts from it)."""
    ids = set()
    for path in glob.glob(os.path.join(ROOT, "core", "*.py")):
        for _line, msg, _comments, _context in extract_from_file("python", path, keywords={"N_": None}):
            ids.add(msg if isinstance(msg, str) else msg[0])
    return ids


def msgids(message: Message) -> list[str]:
    """The message's id and those of the messages inside its parameters."""
    return [message.msgid] + [i for v in message.params.values() if isinstance(v, Message) for i in msgids(v)]


def test_a_bad_setting_explains_itself_with_a_message_whose_english_is_the_error():
    with pytest.raises(ValueError) as e:
        TrainConfig(data="x", strategy="scratch", image_size=8).resolved()
    message = e.value.message
    assert message.msgid == "--{flag} must be at least {low}." and message.params == {"flag": "image-size", "low": 16}
    assert str(message) == str(e.value) == "--image-size must be at least 16."
    assert message.msgid in code_catalog()

    with pytest.raises(ValueError) as e:  # a sentence made elsewhere (the backbone's size) travels as it is
        TrainConfig(data="x", base="xception", image_size=64).resolved()
    assert e.value.message.msgid == "{base} needs images of at least {size} px."
    assert str(e.value) == "Xception needs images of at least 71 px."


def test_a_damaged_run_file_is_explained_with_messages(tmp_path):
    run_dir = runs.create_run(str(tmp_path), {"classes": ["a", "b"], "image_size": 32})
    with open(os.path.join(run_dir, "status.json"), "w") as f:
        f.write("[1, 2]")

    run = runs.read_run(run_dir)
    assert run.damaged_message == Message("{where} holds {value}, not a JSON object.",
                                          {"where": "status.json", "value": "[1, 2]"})
    assert str(run.damaged_message) == run.damaged == "status.json holds [1, 2], not a JSON object."

    with pytest.raises(runs.RunDamaged) as e:
        runs.open_run(run_dir)
    message = e.value.message
    assert message.msgid == "Run {run} is damaged: {why}" and message.params["why"] == run.damaged_message
    assert str(message) == str(e.value) == f"Run {run.id} is damaged: status.json holds [1, 2], not a JSON object."
    assert set(msgids(message)) <= code_catalog()


def test_a_history_line_that_is_not_json_names_its_line_in_a_message(tmp_path):
    run_dir = runs.create_run(str(tmp_path), {"classes": ["a", "b"], "image_size": 32})
    with open(os.path.join(run_dir, "history.jsonl"), "w") as f:
        f.write('{"epoch": 1}\nnot json\n')
    run = runs.read_run(run_dir)
    assert run.damaged == "history.jsonl line 2 is not valid JSON."
    assert msgids(run.damaged_message) == ["{where} is not valid JSON.", "{file} line {n}"]


def test_a_jobs_log_lines_are_messages_from_the_catalog_and_its_echo_is_english(shapes, tmp_path):
    echoed = []
    job = Job(TrainConfig(data=shapes, strategy="scratch", image_size=48, epochs=1, batch_size=8,
                          runs_dir=str(tmp_path / "runs")), echo=echoed.append)
    job.run()
    snap = job.snapshot()
    assert snap["state"] == "finished", snap["error"]
    logs = snap["logs"]
    assert logs and all(isinstance(line, LogLine) for line in logs)
    catalog = code_catalog()
    missing = {i for line in logs for i in msgids(line.message)} - catalog
    assert not missing, missing
    # The command line prints every line in English, exactly as before: [HH:MM:SS] sentence.
    assert echoed == [str(line) for line in logs]
    assert any(line.endswith("] Phase: scan") for line in echoed)
    assert any("] train epoch 1: loss " in line for line in echoed)
    assert any(f"] Run folder: {snap['run_dir']} (training on " in line for line in echoed)


def test_a_failed_job_keeps_its_error_as_a_message_and_in_english():
    job = Job(TrainConfig(data="x", strategy="nope"))
    job.run()
    snap = job.snapshot()
    assert snap["state"] == "failed" and snap["error_message"].msgid == "Unknown strategy '{strategy}': choose one of {choices}."
    assert snap["error"] == str(snap["error_message"]) == job.error == \
        "Unknown strategy 'nope': choose one of scratch, feature-extraction, fine-tune."
    assert [line.message.msgid for line in snap["logs"]] == ["Error: {error}"]
    assert str(snap["logs"][0]).endswith("] Error: Unknown strategy 'nope': choose one of scratch, "
                                         "feature-extraction, fine-tune.")


def test_the_command_line_says_a_bad_setting_in_english():
    p = subprocess.run([sys.executable, "-m", "core.train", "--data", ROOT, "--strategy", "scratch",
                        "--image-size", "8"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert p.returncode == 2
    assert p.stderr.strip().splitlines()[-1] == "error: --image-size must be at least 16."
