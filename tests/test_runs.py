"""core.runs: atomic files, history that survives a kill, interrupted runs."""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys

import pytest

from core import runs
from run_damage import DAMAGE, append
from tiny_runs import METRICS, finished_run as _finished_run


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


# ---------------------------------------------------------------- damaged run files

@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_run_file_is_listed_with_why_and_every_other_run_too(tmp_path, case):
    damage, why = DAMAGE[case]
    good = _finished_run(str(tmp_path))
    bad = _finished_run(str(tmp_path))
    damage(bad)
    listed = {r.run_dir: r for r in runs.list_runs(str(tmp_path))}
    assert set(listed) == {good, bad}
    assert listed[good].damaged is None and listed[good].state == "finished"
    assert listed[good].metrics["accuracy"] == 0.5 and len(listed[good].history) == 1
    assert listed[bad].state == "damaged" and why in listed[bad].damaged, listed[bad].damaged
    assert listed[bad].damaged.endswith(".") and "\n" not in listed[bad].damaged  # one sentence
    with pytest.raises(runs.NotARun, match="is damaged"):  # the command lines refuse it, in words
        runs.open_run(bad)


def test_a_history_line_cut_by_a_kill_in_a_multibyte_character_is_left_out(tmp_path):
    d = _finished_run(str(tmp_path))
    append("history.jsonl", '{"epoch": 2, "phase": "é'.encode()[:-1])(d)
    run = runs.read_run(d)
    assert run.damaged is None and [h["epoch"] for h in run.history] == [1]


def test_a_run_is_a_frozen_record(tmp_path):
    run = runs.read_run(_finished_run(str(tmp_path)))
    with pytest.raises(AttributeError):
        run.state = "finished"
    assert run.id == os.path.basename(run.run_dir) and run.has_model is False


def test_a_folder_without_a_config_is_not_a_run(tmp_path):
    for folder in (str(tmp_path), str(tmp_path / "missing")):
        with pytest.raises(runs.NotARun, match="Not a run folder"):
            runs.open_run(folder)
    untrained = runs.create_run(str(tmp_path), {"strategy": "scratch"})  # no class names
    with pytest.raises(runs.NotARun, match="Not a run folder"):
        runs.open_run(untrained)


# ---------------------------------------------------------------- failing writes

def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _leftovers(folder) -> list[str]:
    return [f for f in os.listdir(folder) if f.startswith(".tmp-")]


class _PartlySavedModel:
    """model.save that writes some bytes, then finds the disk full."""

    def save(self, path):
        with open(path, "wb") as f:
            f.write(b"PK\3\4 half a model")
        raise OSError(errno.ENOSPC, "No space left on device")


WRITES = {  # each writer of a run file, failing at its last step
    "status": ("os.replace", lambda d: runs.write_status(d, state=runs.FAILED), "status.json"),
    "metrics": ("os.replace", lambda d: runs.write_metrics(d, {"accuracy": 1.0}), "metrics.json"),
    "predictions": ("os.replace", lambda d: runs.write_predictions(d, []), "predictions.json"),
    "skipped": ("os.replace", lambda d: runs.write_skipped(d, []), "skipped.json"),
    "history": ("os.write", lambda d: runs.append_history(d, {"epoch": 2}), "history.jsonl"),
    "model": (None, lambda d: runs.save_model(d, _PartlySavedModel()), "model.keras"),
}


@pytest.mark.parametrize("what", WRITES)
def test_a_full_disk_at_each_write_leaves_nothing_half_written(tmp_path, monkeypatch, what):
    target, write, name = WRITES[what]
    d = _finished_run(str(tmp_path))
    before = {f: open(os.path.join(d, f), "rb").read() for f in os.listdir(d)}
    if target:
        monkeypatch.setattr(target, _no_space)
    with pytest.raises(runs.RunWriteError) as e:
        write(d)
    monkeypatch.undo()
    assert str(e.value) == f"Cannot write to the runs folder {tmp_path}: the disk is full."
    assert e.value.errno == errno.ENOSPC and isinstance(e.value, OSError)
    assert not _leftovers(d)  # no temp file, no .tmp-model.keras
    assert {f: open(os.path.join(d, f), "rb").read() for f in os.listdir(d)} == before  # unchanged
    assert runs.read_run(d).damaged is None


def test_history_cut_by_a_full_disk_is_cut_back_and_the_next_epoch_is_whole(tmp_path, monkeypatch):
    d = _finished_run(str(tmp_path))
    real_write = os.write

    def half_then_full(fd, data):
        real_write(fd, bytes(data[:10]))  # part of the line reaches the disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(runs.RunWriteError, match="the disk is full"):
        runs.append_history(d, {"epoch": 2, "loss": 0.1})
    monkeypatch.undo()
    runs.append_history(d, {"epoch": 2, "loss": 0.1})  # space freed: the next epoch is whole
    run = runs.read_run(d)
    assert run.damaged is None and [h["epoch"] for h in run.history] == [1, 2]


def test_a_run_folder_deleted_or_read_only_mid_run_gets_one_sentence(tmp_path, monkeypatch):
    d = _finished_run(str(tmp_path))
    shutil.rmtree(d)
    with pytest.raises(runs.RunWriteError) as e:
        runs.write_metrics(d, {"accuracy": 1.0})
    assert str(e.value) == f"Cannot write to the run folder {d}: it was deleted."
    shutil.rmtree(tmp_path)
    with pytest.raises(runs.RunWriteError) as e:
        runs.write_status(d, state=runs.FAILED)
    assert str(e.value) == f"Cannot write to the runs folder {tmp_path}: it was deleted."
    with pytest.raises(runs.RunWriteError, match="it was deleted"):
        runs.append_history(d, {"epoch": 1})


def test_a_failing_start_leaves_no_run_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "replace", _no_space)
    with pytest.raises(runs.RunWriteError, match="the disk is full"):
        runs.create_run(str(tmp_path), {"strategy": "scratch"})
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- a real full / read-only filesystem

@pytest.fixture
def tiny_filesystem(tmp_path):
    """A 1 MB tmpfs (root only): really full, then really read-only."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "fs"
    mount.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {p.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder) -> str:
    """Write zeros until the filesystem is full; the path of the filler."""
    path = os.path.join(folder, "filler")
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as e:
            assert e.errno == errno.ENOSPC
    return path


def test_a_really_full_then_read_only_runs_folder(tiny_filesystem):
    runs_dir = str(tiny_filesystem / "runs")
    d = _finished_run(runs_dir)
    filler = _fill(tiny_filesystem)
    big = {**METRICS, "note": "x" * 200_000}
    for write in (lambda: runs.write_metrics(d, big), lambda: runs.write_predictions(d, [big]),
                  lambda: runs.append_history(d, {"epoch": 2, "note": "x" * 200_000}),
                  lambda: runs.save_model(d, _BigModel())):
        with pytest.raises(runs.RunWriteError) as e:
            write()
        assert str(e.value) == f"Cannot write to the runs folder {runs_dir}: the disk is full."
        assert not _leftovers(d)
    assert runs.read_run(d).damaged is None and not runs.read_run(d).has_model
    os.unlink(filler)  # space freed: writing works again
    runs.write_metrics(d, big)
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_filesystem)], check=True)
    with pytest.raises(runs.RunWriteError) as e:
        runs.write_status(d, state=runs.FAILED)
    assert str(e.value) == f"Cannot write to the runs folder {runs_dir}: it is read-only."
    with pytest.raises(runs.RunWriteError, match="it is read-only"):
        runs.append_history(d, {"epoch": 2})
    run = runs.read_run(d)
    assert run.damaged is None and run.state == "finished" and run.metrics["note"] == big["note"]


class _BigModel:
    """model.save of 2 MB, more than the tiny filesystem holds."""

    def save(self, path):
        with open(path, "wb") as f:
            for _ in range(512):
                f.write(b"\1" * 4096)


def test_a_run_can_be_named_and_the_name_cleared(tmp_path):
    d = _finished_run(str(tmp_path))
    assert runs.read_run(d).name == os.path.basename(d)
    assert runs.set_label(d, "  cats   and dogs, first try ") == "cats and dogs, first try"
    run = runs.read_run(d)
    assert (run.label, run.name) == ("cats and dogs, first try", "cats and dogs, first try")
    assert len(runs.set_label(d, "x" * 500)) == runs.LABEL_MAX
    runs.set_label(d, "   ")
    assert runs.read_run(d).label is None and runs.read_run(d).name == os.path.basename(d)


@pytest.mark.parametrize("content", [b"\xff\xfe", b"{not json", b"42", b'""'])
def test_a_damaged_name_file_leaves_the_run_unnamed_not_damaged(tmp_path, content):
    d = _finished_run(str(tmp_path))
    with open(os.path.join(d, runs.LABEL), "wb") as f:
        f.write(content)
    run = runs.read_run(d)
    assert run.label is None and run.damaged is None and run.state == runs.FINISHED


def test_deleting_a_run_removes_it_whole_and_a_training_run_is_refused(tmp_path):
    done, other = _finished_run(str(tmp_path)), _finished_run(str(tmp_path))
    runs.delete_run(done)
    assert not os.path.exists(done) and os.listdir(tmp_path) == [os.path.basename(other)]
    assert [r.run_dir for r in runs.list_runs(str(tmp_path))] == [other]
    runs.write_status(other, state=runs.RUNNING, pid=os.getpid())
    with pytest.raises(runs.RunInUse, match="still training"):
        runs.delete_run(other, active_run_dirs=[other])
    assert runs.read_run(other, [other]).state == runs.RUNNING  # untouched


def test_a_run_half_deleted_is_never_listed(tmp_path):
    d = _finished_run(str(tmp_path))
    os.replace(d, os.path.join(tmp_path, runs.TRASH_PREFIX + os.path.basename(d)))  # a delete cut short
    assert runs.list_runs(str(tmp_path)) == []


def test_only_the_owner_may_rename_or_delete_a_run_and_a_queued_one_stays(tmp_path):
    mine, theirs, old = (_finished_run(str(tmp_path)) for _ in range(3))
    runs.write_status(mine, owner="me-token-1")
    runs.write_status(theirs, owner="someone-else")
    with pytest.raises(runs.RunNotYours):
        runs.set_label(theirs, "hijacked", owner="me-token-1")
    with pytest.raises(runs.RunNotYours):
        runs.delete_run(theirs, owner="me-token-1")
    assert os.path.isdir(theirs) and runs.read_run(theirs).label is None
    runs.set_label(mine, "mine", owner="me-token-1")
    runs.delete_run(old, owner="me-token-1")  # a run from before owners (or the command line): anyone's
    runs.delete_run(theirs)  # owner None: the admin token, or the command line
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(mine)]
    runs.write_status(mine, state=runs.QUEUED, pid=os.getpid())
    with pytest.raises(runs.RunInUse, match="queue"):
        runs.delete_run(mine, active_run_dirs=[mine], owner="me-token-1")
