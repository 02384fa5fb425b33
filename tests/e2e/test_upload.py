"""Issue 17 in a real browser: a dataset .zip uploaded on the Dataset page is unpacked into the
session's own uploads folder, opened and scanned; a zip that tries to leave its folder is refused
with a sentence. Its own server: the uploads folder must lie inside a data root."""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import zipfile

import pytest
from playwright.sync_api import Page, expect

from .conftest import ROOT, SHARED_WEIGHTS, free_port, wait_healthy
from .test_dashboard import main_area, no_exception_box, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
BUSY = 180_000  # ms: a shared machine under load answers slowly


def idle(page: Page) -> None:
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=BUSY)


@pytest.fixture(scope="module")
def upload_server(tmp_path_factory):
    """The dashboard with a data root holding the uploads folder."""
    base = tmp_path_factory.mktemp("upload-e2e")
    (base / "data").mkdir()
    env = {**os.environ, "TRANSFERLAB_RUNS_DIR": str(base / "runs"), "TRANSFERLAB_SAMPLES_DIR": str(base / "samples"),
           "TRANSFERLAB_DATA_ROOTS": str(base / "data"), "TRANSFERLAB_UPLOADS_DIR": str(base / "data" / "uploads"),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    if SHARED_WEIGHTS.is_dir():
        env["KERAS_HOME"] = str(SHARED_WEIGHTS)
    port, log = free_port(), base / "streamlit.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, server, log)
        yield url, base / "data" / "uploads"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(15)


def zip_of(names: list[str]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i, name in enumerate(names):
            image = io.BytesIO()
            Image.new("RGB", (16, 12), (30 * i % 255, 90, 200)).save(image, "PNG")
            z.writestr(name, image.getvalue())
    return buf.getvalue()


def upload(page: Page, name: str, content: bytes) -> None:
    main = main_area(page)
    main.get_by_text("Upload a dataset (.zip)").click()
    uploader = main.get_by_test_id("stFileUploader")
    expect(uploader).to_contain_text("200MB")  # the limit the browser enforces
    uploader.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(
        {"name": name, "mimeType": "application/zip", "buffer": content})


def test_an_uploaded_zip_becomes_the_current_dataset(page: Page, upload_server):
    url, uploads_dir = upload_server
    page.goto(url)
    expect(page.get_by_role("heading", name="Dataset", level=1)).to_be_visible(timeout=BUSY)
    idle(page)
    upload(page, "pets.zip", zip_of([f"pets/{c}/{i}.png" for c in ("cats", "dogs") for i in range(5)]))
    expect(main_area(page)).to_contain_text("Classes: cats, dogs", timeout=BUSY)
    idle(page)
    [owner] = os.listdir(uploads_dir)
    assert os.listdir(uploads_dir / owner) == ["pets"]
    expect(main_area(page)).to_contain_text(str(uploads_dir / owner / "pets"))  # "Current dataset: …"
    no_exception_box(page)
    screenshot(page, "upload-dataset")


def test_a_zip_that_leaves_its_folder_is_refused_with_a_sentence(page: Page, upload_server):
    url, uploads_dir = upload_server
    page.goto(url)
    expect(page.get_by_role("heading", name="Dataset", level=1)).to_be_visible(timeout=BUSY)
    idle(page)
    before = sorted(p for p in uploads_dir.rglob("*")) if uploads_dir.exists() else []
    upload(page, "evil.zip", zip_of(["../../evil.png", "cats/1.png", "dogs/1.png"]))
    expect(main_area(page).get_by_test_id("stAlertContentError")).to_contain_text(
        "points outside the zip's own folder", timeout=BUSY)
    idle(page)
    after = sorted(p for p in uploads_dir.rglob("*")) if uploads_dir.exists() else []
    assert after == before
    assert not (uploads_dir.parent.parent / "evil.png").exists()
    no_exception_box(page)
