"""Issue 6 in a real browser: two users and one training, a server killed with kill -9 in the middle
of a training and started again, an upload over the size limit. Screenshots: conftest.SCREENSHOTS.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from core import runs

from .conftest import ROOT, SHARED_WEIGHTS, VIEWPORT, free_port, wait_healthy
from .test_dashboard import idle, main_area, no_exception_box, screenshot, wait_for_points

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


BUSY = 180_000  # ms: a shared two-core machine under load answers slowly while a training runs


def open_page(page: Page, url: str, slug: str, title: str) -> None:
    """Go to a page by its address (a sidebar click waits for the link to be 'stable', which a
    starved browser may not report for a long time while a training runs)."""
    page.goto(f"{url}/{slug}")
    expect(page.get_by_role("heading", name=title, level=1)).to_be_visible(timeout=BUSY)
    idle(page)


def small_scratch_training(page: Page, epochs: int) -> None:
    """On the Train page: from scratch, 48 px, `epochs` epochs (the settings stay in this session)."""
    main = main_area(page)
    main.get_by_test_id("stRadio").get_by_text("From scratch", exact=True).click()
    size = main.get_by_label("Image size (px)", exact=True)
    size.fill("48")
    size.press("Enter")
    field = main.get_by_label("Epochs", exact=True)
    field.fill(str(epochs))
    field.press("Enter")
    idle(page)


def wait_no_job(page: Page) -> None:
    """Let a training left by an earlier test end first (the server is shared)."""
    expect(page.get_by_test_id("stSidebar")).not_to_contain_text("running", timeout=120_000)


def test_two_users_the_second_training_waits_in_the_queue_and_can_be_cancelled(browser, app_url, server_dir):
    first = browser.new_context(viewport=VIEWPORT)
    second = browser.new_context(viewport=VIEWPORT)  # another user: no cookie, no session in common
    try:
        a, b = first.new_page(), second.new_page()
        for p in (a, b):
            p.set_default_timeout(60_000)
        open_page(a, app_url, "train", "Train")
        wait_no_job(a)
        before = {p.name for p in (server_dir / "runs").glob("*/")} if (server_dir / "runs").exists() else set()
        # Long enough (about 40 x 1-4 s on two loaded cores) for B to arrive while it runs.
        small_scratch_training(a, epochs=40)
        main_area(a).get_by_role("button", name="Start training").click(force=True)
        wait_for_points(a, 2, timeout=180)

        open_page(b, app_url, "train", "Train")
        expect(b.get_by_test_id("stSidebar")).to_contain_text("running", timeout=BUSY)  # B sees A's job
        main_area(b).get_by_role("button", name="Start training").click(force=True)
        # One training at a time on a CPU: B's waits, with its place, and is not refused.
        waiting = main_area(b).get_by_test_id("stAlert").filter(has_text="Waiting in the queue: place 1.")
        expect(waiting).to_be_visible(timeout=BUSY)
        no_exception_box(b)
        waiting.evaluate("e => e.scrollIntoView({block: 'center'})")
        screenshot(b, "two-users-queued")
        main_area(b).get_by_role("button", name="Cancel").click(force=True)
        expect(main_area(b)).to_contain_text("cancelled", timeout=BUSY)

        # A's run goes on to its end, and is the only new run (B's cancelled one leaves nothing).
        points = wait_for_points(a, 0)
        wait_for_points(a, points, timeout=120)  # it goes on after B's attempt
        expect(main_area(a)).to_contain_text("finished", timeout=600_000)
        expect(main_area(a).get_by_test_id("stMetric").filter(has_text="Epochs")).to_contain_text("40")
        no_exception_box(a)
        screenshot(a, "two-users-first-finished")
        new = [p for p in (server_dir / "runs").glob("*/") if p.name not in before]
        assert len(new) == 1, new
        run = runs.read_run(str(new[0]))
        assert run.state == "finished" and len(run.history) == 40
    finally:
        first.close()
        second.close()


def test_an_upload_over_the_size_limit_is_refused_with_a_message(page: Page, app_url):
    open_page(page, app_url, "augment", "Augment")
    main_area(page).get_by_test_id("stRadio").get_by_text("Upload one", exact=True).click()
    uploader = main_area(page).get_by_test_id("stFileUploaderDropzoneInput")
    uploader.set_input_files({"name": "huge.png", "mimeType": "image/png", "buffer": b"\0" * (21 * 1024 * 1024)})
    # Streamlit refuses it in the browser: the file is marked red, "File must be 20.0MB or smaller."
    # in its tooltip, and the page never receives it.
    uploader_box = main_area(page).get_by_test_id("stFileUploader")
    expect(uploader_box).to_contain_text("huge.png")
    expect(uploader_box).to_contain_text("File must be 20.0MB or smaller.")
    idle(page)
    expect(main_area(page)).to_contain_text("Choose a file to see it augmented.")
    expect(main_area(page).get_by_test_id("stImage")).to_have_count(0)
    no_exception_box(page)
    screenshot(page, "upload-too-large")


# ---------------------------------------------------------------- kill -9 of the server

def start_server(folder: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "TRANSFERLAB_RUNS_DIR": str(folder / "runs"),
           "TRANSFERLAB_SAMPLES_DIR": str(folder / "samples"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TRANSFERLAB_DATA_ROOTS", None)
    if SHARED_WEIGHTS.is_dir():
        env["KERAS_HOME"] = str(SHARED_WEIGHTS)
    with open(folder / f"streamlit-{time.time():.0f}.log", "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    wait_healthy(f"http://127.0.0.1:{port}", server, Path(out.name))
    return server


def test_kill_9_of_the_server_during_training(browser, tmp_path):
    """A training started in the browser; the server is killed (SIGKILL, its whole process group)
    after two finished epochs; a new server on the same runs folder lists the run as interrupted,
    with its history, and its best checkpoint loads."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(tmp_path, port)
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        open_page(page, url, "train", "Train")
        small_scratch_training(page, epochs=300)
        main_area(page).get_by_role("button", name="Start training").click(force=True)
        deadline = time.time() + 180
        finished = 0
        while time.time() < deadline and finished < 2:
            history = list((tmp_path / "runs").glob("*/history.jsonl"))
            finished = len(history[0].read_text().splitlines()) if history else 0
            time.sleep(0.2)
        assert finished >= 2, "two epochs did not finish in time"
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(30)
        assert server.returncode == -signal.SIGKILL

        server = start_server(tmp_path, port)
        open_page(page, url, "evaluate", "Evaluate")
        main = main_area(page)
        expect(main).to_contain_text("the server stopped while it trained", timeout=BUSY)
        expect(page.get_by_test_id("stSidebar")).to_contain_text("interrupted")
        no_exception_box(page)
        screenshot(page, "after-kill-9")
    finally:
        context.close()
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)

    (run,) = runs.list_runs(str(tmp_path / "runs"))
    assert run.state == "interrupted"
    epochs = [h["epoch"] for h in run.history]
    assert len(epochs) >= finished and epochs == list(range(1, len(epochs) + 1))
    assert run.has_model and 1 <= run.status["best_epoch"] <= len(epochs)
    model = runs.load_model(run.run_dir)
    assert model.output_shape == (None, 3)
