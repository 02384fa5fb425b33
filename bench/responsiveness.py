"""How fast the dashboard answers in a real browser, idle and while a training runs in the server.

For each arm a fresh `streamlit run app.py` (runs and sample in a temporary folder) and Debian's
chromium (Playwright). Arms:
    idle        no training
    train       a training started from a second browser context (another user) on the Train
                page: from scratch, 160 px, the built-in sample, batch 32; TensorFlow's own
                thread pools (as many threads as cores)
    train-N     the same with TRANSFERLAB_TF_THREADS=N (N threads for TensorFlow's pools)
Each round a user does three things, each timed from the action until what it asked for is on
the page and Streamlit's script state is idle again ("notRunning"):
    to Augment    sidebar link Dataset -> Augment, until its 12 images are shown
    slider        the rotation slider one step, until the first augmented image has changed
    to Dataset    sidebar link Augment -> Dataset, until its gallery (18 images) is shown
The arms are run in turn, `--cycles` times (A B C A B C), because the load of a shared machine
drifts. Printed: one line per measurement, a Markdown table (median and worst per arm and
interaction, the training's median epoch time) and a last JSON line.

    .venv/bin/python bench/responsiveness.py --rounds 6 --cycles 2 --arms idle train train-1
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("TRANSFERLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
VIEWPORT = {"width": 1280, "height": 800}
IDLE = "document.querySelector('[data-testid=stApp]')?.getAttribute('data-test-script-state') === 'notRunning'"
MAIN_IMAGES = "document.querySelectorAll('[data-testid=stMain] [data-testid=stImage] img')"
H1 = "document.querySelector('[data-testid=stMain] h1')?.innerText?.trim()"


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(folder: Path, threads: str | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "TRANSFERLAB_RUNS_DIR": str(folder / "runs"),
           "TRANSFERLAB_SAMPLES_DIR": str(folder.parent / "samples"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TRANSFERLAB_TF_THREADS", None)
    if threads:
        env["TRANSFERLAB_TF_THREADS"] = threads
    log = open(folder / "streamlit.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                               "--server.port", str(port), "--server.address", "127.0.0.1",
                               "--server.fileWatcherType", "none"],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return server, url
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("the server did not start")


def stop_server(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGKILL)
    server.wait(30)


def wait(page, condition: str, timeout_s: float) -> None:
    page.wait_for_function(condition, timeout=timeout_s * 1000, polling=20)


def nav(page, slug: str) -> None:
    """Click a sidebar link from the page's own script (no wait for the link to be 'stable')."""
    page.evaluate(f"document.querySelector('[data-testid=stSidebarNav] a[href$=\"/{slug}\"]').click()")


def timed(action, page, condition: str, timeout_s: float) -> float | None:
    t0 = time.perf_counter()
    action()
    try:
        wait(page, condition, timeout_s)
    except Exception:  # noqa: BLE001  a timeout is reported as such
        return None
    return time.perf_counter() - t0


def on_augment() -> str:
    return f"{H1} === 'Augment' && {MAIN_IMAGES}.length === 12 && {IDLE}"


def on_dataset() -> str:
    return f"{H1} === 'Dataset' && {MAIN_IMAGES}.length === 18 && {IDLE}"


def one_round(page, step: int, timeout_s: float) -> dict[str, float | None]:
    out = {"to Augment": timed(lambda: nav(page, "augment"), page, on_augment(), timeout_s)}
    before = page.evaluate(f"{MAIN_IMAGES}[1]?.src")
    slider = page.locator('[data-testid=stMain] [data-testid=stSlider]').filter(has_text="Rotation").get_by_role("slider")
    slider.focus()
    key = "ArrowRight" if step % 2 == 0 else "ArrowLeft"
    out["slider"] = timed(lambda: page.keyboard.press(key), page,
                          f"{MAIN_IMAGES}[1]?.src !== {json.dumps(before)} && {IDLE}", timeout_s)
    out["to Dataset"] = timed(lambda: nav(page, ""), page, on_dataset(), timeout_s)
    return out


def start_training(browser, url: str, folder: Path, timeout_s: float):
    """A second user starts a scratch training at 160 px for many epochs; returns its browser
    context once the epochs have begun (decoding is over: the steady state is measured)."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(timeout_s * 1000)
    page.goto(f"{url}/train")
    wait(page, f"{H1} === 'Train' && {IDLE}", timeout_s)
    page.get_by_test_id("stMain").get_by_test_id("stRadio").get_by_text("From scratch", exact=True).click()
    wait(page, IDLE, timeout_s)
    epochs = page.get_by_test_id("stMain").get_by_label("Epochs", exact=True)
    epochs.fill("500")
    epochs.press("Enter")
    wait(page, IDLE, timeout_s)
    page.get_by_test_id("stMain").get_by_role("button", name="Start training").click(force=True)
    # Measure the steady state: the images are decoded and the epochs have begun.
    page.get_by_test_id("stMain").get_by_text("phase train").wait_for(timeout=300_000)
    return context


def epoch_seconds(folder: Path) -> list[float]:
    out = []
    for history in (folder / "runs").glob("*/history.jsonl"):
        for line in history.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            out.append(record["seconds"])
    return out


def run_arm(browser, arm: str, rounds: int, base: Path, timeout_s: float) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"{arm}-", dir=base))
    threads = arm.split("-", 1)[1] if arm.startswith("train-") else None
    load_before = load()
    server, url = start_server(folder, threads)
    trainer = None
    try:
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        page.set_default_timeout(timeout_s * 1000)
        page.goto(url)
        wait(page, on_dataset(), 180)
        one_round(page, 0, 180)  # warm-up: imports, caches, the first TensorFlow graph of the preview
        if arm != "idle":
            trainer = start_training(browser, url, folder, 180)
            page.goto(url)
            wait(page, on_dataset(), 180)
        epochs_before = len(epoch_seconds(folder))
        samples = []
        for step in range(rounds):
            result = one_round(page, step + 1, timeout_s)
            samples.append(result)
            print(f"{arm:9s} round {step + 1}: " + ", ".join(
                f"{k} {'timeout' if v is None else f'{v:.2f} s'}" for k, v in result.items()), flush=True)
        epochs = epoch_seconds(folder)[epochs_before:] if arm != "idle" else []
        context.close()
        if trainer:
            trainer.close()
    finally:
        stop_server(server)
    return {"arm": arm, "samples": samples, "epoch_seconds": epochs, "load_before": load_before,
            "load_after": load()}


def summarize(results: list[dict]) -> tuple[str, dict]:
    arms = list(dict.fromkeys(r["arm"] for r in results))
    kinds = ["to Augment", "slider", "to Dataset"]
    lines = ["| arm | interaction | n | median (s) | worst (s) | timeouts | epoch time, median (s) |",
             "|---|---|---|---|---|---|---|"]
    summary = {}
    for arm in arms:
        mine = [r for r in results if r["arm"] == arm]
        epochs = [e for r in mine for e in r["epoch_seconds"]]
        epoch_text = f"{statistics.median(epochs):.1f} ({len(epochs)} epochs)" if epochs else "—"
        for kind in kinds + ["all"]:
            values = [s[k] for r in mine for s in r["samples"] for k in (kinds if kind == "all" else [kind])]
            done = [v for v in values if v is not None]
            med = statistics.median(done) if done else None
            worst = max(done) if done else None
            summary[f"{arm}/{kind}"] = {"n": len(values), "median": med, "worst": worst,
                                        "timeouts": len(values) - len(done)}
            lines.append(f"| {arm} | {kind} | {len(values)} | {med:.2f} | {worst:.2f} | {len(values) - len(done)} | "
                         f"{epoch_text if kind == 'all' else ''} |" if done else
                         f"| {arm} | {kind} | {len(values)} | — | — | {len(values)} | |")
        summary[f"{arm}/epoch_seconds"] = statistics.median(epochs) if epochs else None
    return "\n".join(lines), summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arms", nargs="+", default=["idle", "train", "train-1"])
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--cycles", type=int, default=2)
    p.add_argument("--timeout", type=float, default=60, help="seconds before an interaction counts as a timeout")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"# responsiveness\n{started}\ncommand: {' '.join([sys.executable] + sys.argv)}\n"
          f"machine: {os.cpu_count()} CPU cores; load average at start: {load()}", flush=True)
    base = Path(tempfile.mkdtemp(prefix="transferlab-responsiveness-"))
    results = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for cycle in range(args.cycles):
            for arm in args.arms:
                results.append(run_arm(browser, arm, args.rounds, base, args.timeout))
                print(f"{arm}: load average {results[-1]['load_before']} before, {results[-1]['load_after']} after",
                      flush=True)
        browser.close()
    table, summary = summarize(results)
    print(f"\nload average at the end: {load()}\n\n{table}\n")
    print(json.dumps({"started": started, "summary": summary,
                      "loads": [(r["arm"], r["load_before"], r["load_after"]) for r in results]}))


if __name__ == "__main__":
    main()
