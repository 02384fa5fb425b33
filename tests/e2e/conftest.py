"""A real `streamlit run app.py` and a real Chromium, shared by the end-to-end tests.

The server writes its runs and its generated sample into a temporary folder; KERAS_HOME points
at ../shared/weights when that exists (offline ImageNet weights).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED_WEIGHTS = ROOT.parent / "shared" / "weights"
# Screenshots go to a temporary folder; to refresh the ones in docs/, run the e2e tests with
# TRANSFERLAB_SCREENSHOTS=docs/screenshots (a test run never rewrites tracked files by itself).
SCREENSHOTS = Path(os.environ.get("TRANSFERLAB_SCREENSHOTS")
                   or tempfile.mkdtemp(prefix="transferlab-screenshots-")).resolve()
CHROMIUM = os.environ.get("TRANSFERLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
VIEWPORT = {"width": 1280, "height": 800}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"streamlit did not become healthy in {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def server_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def app_url(server_dir):
    """Start the dashboard on a free port; stop it (and its process group) at the end."""
    port = free_port()
    (server_dir / "data").mkdir(exist_ok=True)  # the one data root: the tests' generated datasets go there
    env = {**os.environ, "TRANSFERLAB_RUNS_DIR": str(server_dir / "runs"),
           "TRANSFERLAB_SAMPLES_DIR": str(server_dir / "samples"), "TRANSFERLAB_DATA_ROOTS": str(server_dir / "data"),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    if SHARED_WEIGHTS.is_dir():
        env["KERAS_HOME"] = str(SHARED_WEIGHTS)
    log = server_dir / "streamlit.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none",
             "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, server, log)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(5)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # the first page load imports TensorFlow on two cores

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, app_url):
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(60_000)
    p = context.new_page()
    yield p
    context.close()


@pytest.fixture
def a_run(server_dir):
    """At least one evaluated run in the server's runs folder (trained here if the walk did not)."""
    runs = server_dir / "runs"
    if not any(p.joinpath("metrics.json").exists() for p in runs.glob("*/")):
        from core.sample import ensure_shapes

        data = ensure_shapes(str(server_dir / "samples"))
        subprocess.run([sys.executable, "-m", "core.train", "--data", data, "--strategy", "scratch",
                        "--image-size", "48", "--epochs", "1", "--runs-dir", str(runs)],
                       cwd=ROOT, check=True, capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    return runs
