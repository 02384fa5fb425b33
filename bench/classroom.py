"""The classroom moments of issue 14, timed in Chromium against `streamlit run app.py`: what thirty
people feel when a teacher clicks. A benchmark, run by hand; results in docs/BENCHMARKS.md.

One fresh server (runs and the built-in sample in a temporary folder), one browser context:
    navigation    a sidebar link -> the page's title shown and the script idle, each page in turn
                  (warm server: every page was visited once before), `--rounds` times
    slider        Augment's rotation slider one step -> the first variant image changed
    refresh       F5 on the Train page by the person whose training runs (a second context) ->
                  their running job (its Stop button) visible again
    evaluate      after that training is stopped and evaluated: Evaluate's first visit -> the
                  confusion matrix drawn (then `--rounds` - 1 more visits, warm)
    grad-cam      then Inspect's first visit for that model -> its Grad-CAM shown (the model was
                  warmed up in the background when the training ended and Evaluate showed it)
Each timing ends when what was asked is on the page *and* Streamlit's script state is idle.

    .venv/bin/python bench/classroom.py --rounds 5
"""
from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from responsiveness import (CHROMIUM, CHROMIUM_ARGS, H1, IDLE, MAIN_IMAGES, VIEWPORT, load,  # noqa: E402
                            on_augment, start_server, stop_server, timed, wait)

PAGES = {"": "Dataset", "augment": "Augment", "train": "Train", "evaluate": "Evaluate", "predict": "Predict",
         "inspect": "Inspect", "visualize": "Visualize"}
STOP_SHOWN = "!!document.querySelector('[data-testid=stMain] .st-key-stop button')"  # the Stop button (key "stop")
HEATMAP = ("[...document.querySelectorAll('[data-testid=stMain] .js-plotly-plot')]"
           ".some(g => g.data && g.data.some(d => d.type === 'heatmap'))")
GRAD_CAM = ("[...document.querySelectorAll('[data-testid=stMain] [data-testid=stImageCaption], "
            "[data-testid=stMain] [data-testid=stCaptionContainer]')].some(c => c.innerText.includes('evidence for'))")


def nav(page, slug: str) -> None:
    page.evaluate(f"document.querySelector('[data-testid=stSidebarNav] a[href$=\"/{slug}\"]').click()")


def on(title: str, extra: str = "true") -> str:
    return f"{H1} === {json.dumps(title)} && ({extra}) && {IDLE}"


def start_training(browser, url: str, timeout_s: float):
    """A second person starts a long scratch training on the sample; returns their context once its
    epochs have begun."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(timeout_s * 1000)
    page.goto(f"{url}/train")
    wait(page, on("Train"), timeout_s)
    main = page.get_by_test_id("stMain")
    main.get_by_test_id("stRadio").get_by_text("From scratch", exact=True).click()
    wait(page, IDLE, timeout_s)
    epochs = main.get_by_label("Epochs", exact=True)
    epochs.fill("200")
    epochs.press("Enter")
    wait(page, IDLE, timeout_s)
    main.get_by_role("button", name="Start training").click(force=True)
    wait(page, STOP_SHOWN, timeout_s)
    return context, page


def measure(rounds: int, timeout_s: float) -> dict:
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="transferlab-classroom-"))
    server, url = start_server(folder, None)
    out: dict[str, list] = {"navigation": [], "slider": [], "refresh": [], "evaluate first": [],
                            "evaluate again": [], "grad-cam first": []}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport=VIEWPORT).new_page()
            page.set_default_timeout(timeout_s * 1000)
            page.goto(url)
            wait(page, on("Dataset", f"{MAIN_IMAGES}.length > 0"), 300)
            for slug in ("augment", "train", ""):  # warm the server (not Evaluate/Inspect: measured below)
                nav(page, slug)
                wait(page, on(PAGES[slug]), 300)
            for _ in range(rounds):
                for slug in ("augment", "train", ""):
                    out["navigation"].append(timed(lambda: nav(page, slug), page, on(PAGES[slug]), timeout_s))
            nav(page, "augment")
            wait(page, on_augment(), timeout_s)
            slider = page.locator("[data-testid=stMain] [data-testid=stSlider]").filter(
                has_text="Rotation").get_by_role("slider")
            for step in range(rounds):
                before = page.evaluate(f"{MAIN_IMAGES}[1]?.src")
                slider.focus()
                out["slider"].append(timed(lambda: page.keyboard.press("ArrowRight" if step % 2 else "ArrowLeft"),
                                           page, f"{MAIN_IMAGES}[1]?.src !== {json.dumps(before)} && {IDLE}",
                                           timeout_s))
            try:
                trainer, trainer_page = start_training(browser, url, 300)
            except Exception as e:  # noqa: BLE001  report what was measured, and why the rest was not
                shot = folder / "start_failed.png"
                browser.contexts[-1].pages[-1].screenshot(path=str(shot))
                print(f"the training could not be started ({type(e).__name__}); screenshot {shot}", flush=True)
                return out
            for _ in range(rounds):  # the person who started it presses F5: their job, with its Stop button
                out["refresh"].append(timed(lambda: trainer_page.reload(), trainer_page, on("Train", STOP_SHOWN),
                                            timeout_s))
            trainer_page.get_by_role("button", name="Stop").click(force=True)
            trainer_page.get_by_test_id("stMain").get_by_text("stopped").first.wait_for(timeout=300_000)
            trainer.close()
            out["evaluate first"].append(timed(lambda: nav(page, "evaluate"), page, on("Evaluate", HEATMAP),
                                               timeout_s * 3))
            for _ in range(rounds - 1):
                nav(page, "")
                wait(page, on("Dataset"), timeout_s)
                out["evaluate again"].append(timed(lambda: nav(page, "evaluate"), page, on("Evaluate", HEATMAP),
                                                   timeout_s))
            out["grad-cam first"].append(timed(lambda: nav(page, "inspect"), page, on("Inspect", GRAD_CAM),
                                               timeout_s * 3))
            for slug in ("visualize", "predict", "inspect", "evaluate"):
                out["navigation"].append(timed(lambda: nav(page, slug), page, on(PAGES[slug]), timeout_s))
            browser.close()
    finally:
        stop_server(server)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--timeout", type=float, default=60)
    args = p.parse_args()
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"# classroom moments\n{started}\ncommand: {' '.join([sys.executable] + sys.argv)}\n"
          f"load average at start: {load()}", flush=True)
    out = measure(args.rounds, args.timeout)
    print(f"load average at the end: {load()}\n")
    print("| moment | n | median (s) | worst (s) | timeouts |\n|---|---|---|---|---|")
    summary = {}
    for moment, values in out.items():
        done = [v for v in values if v is not None]
        med, worst = (statistics.median(done), max(done)) if done else (None, None)
        summary[moment] = {"n": len(values), "median": med, "worst": worst, "timeouts": len(values) - len(done),
                           "values": values}
        print(f"| {moment} | {len(values)} | {'—' if med is None else f'{med:.2f}'} | "
              f"{'—' if worst is None else f'{worst:.2f}'} | {len(values) - len(done)} |")
    print(json.dumps({"started": started, "summary": summary}))


if __name__ == "__main__":
    main()
