"""Load: many people on one server while trainings run and wait in the queue.

One `streamlit run app.py` (runs and sample in a temporary folder, TRANSFERLAB_MAX_TRAININGS =
--workers) and one Debian chromium (Playwright, async API) with --users browser contexts: each
context is one person with their own owner token (?me=). The first --jobs users each start a
tiny training on the Train page (with fewer users than --jobs, the first ones start more) (from scratch, 48 px, --epochs epochs, the built-in sample), so
--workers run and the rest wait in the queue. Then every user navigates the sidebar pages
(Dataset, Augment, Train, Evaluate) in a random order with a think time of --think seconds
(uniform over [think/2, 3·think/2]) between clicks, until every job has ended (or --max-minutes).

Each page latency is timed from the click on a sidebar link until the page's title is shown and
Streamlit's script state is idle ("notRunning"): p50 and p95 over all users. At the end the runs
folder is read: every job that was started must have a run folder that ended (finished, stopped
or failed, reported with its error), none still queued/running, none missing.

    .venv/bin/python bench/load.py --users 20 --jobs 7 --workers 2
    .venv/bin/python bench/load.py --users 20 --jobs 7 --workers 1   # the comparison

The machine's load average is printed before and after: on a shared machine it says how much of
the latency is the machine's and not the dashboard's.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import responsiveness as rs  # noqa: E402  (the server and browser helpers of the responsiveness bench)

PAGES = {"": "Dataset", "augment": "Augment", "train": "Train", "evaluate": "Evaluate"}
FINAL = {"finished", "stopped", "failed"}


def on_page(title: str) -> str:
    return f"{rs.H1} === {json.dumps(title)} && {rs.IDLE}"


async def wait(page, condition: str, timeout_s: float) -> None:
    await page.wait_for_function(condition, timeout=timeout_s * 1000, polling=50)


async def open_user(browser, url: str, timeout_s: float):
    context = await browser.new_context(viewport=rs.VIEWPORT)
    page = await context.new_page()
    page.set_default_timeout(timeout_s * 1000)
    await page.goto(url)
    await wait(page, on_page("Dataset"), timeout_s)
    return context, page


async def start_training(page, epochs: int, timeout_s: float) -> None:
    """On the Train page: from scratch, 48 px, `epochs` epochs, Start."""
    await page.evaluate("document.querySelector('[data-testid=stSidebarNav] a[href$=\"/train\"]').click()")
    await wait(page, on_page("Train"), timeout_s)
    main = page.get_by_test_id("stMain")
    await main.get_by_test_id("stRadio").get_by_text("From scratch", exact=True).click()
    await wait(page, rs.IDLE, timeout_s)
    size = main.get_by_test_id("stSlider").filter(has_text="Image size")
    await size.get_by_role("slider").focus()
    await page.keyboard.press("Home")  # the smallest size: 48 px
    await wait(page, rs.IDLE, timeout_s)
    field = main.get_by_label("Epochs", exact=True)
    await field.fill(str(epochs))
    await field.press("Enter")
    await wait(page, rs.IDLE, timeout_s)
    await main.get_by_role("button", name="Start training").click()
    await main.get_by_text("Run ").first.wait_for(timeout=timeout_s * 1000)


def run_states(folder: Path) -> dict[str, dict]:
    out = {}
    for status in (folder / "runs").glob("*/status.json"):
        try:
            out[status.parent.name] = json.loads(status.read_text())
        except ValueError:
            out[status.parent.name] = {"state": "unreadable"}
    return out


async def browse(user: int, page, stop: asyncio.Event, think: float, timeout_s: float, samples: list) -> None:
    rng = random.Random(user)
    current = ""
    while not stop.is_set():
        await asyncio.sleep(rng.uniform(think / 2, think * 3 / 2))
        slug = rng.choice([s for s in PAGES if s != current])
        t0 = time.perf_counter()
        await page.evaluate(f"document.querySelector('[data-testid=stSidebarNav] a[href$=\"/{slug}\"]').click()")
        try:
            await wait(page, on_page(PAGES[slug]), timeout_s)
            samples.append({"user": user, "page": PAGES[slug], "seconds": time.perf_counter() - t0})
        except Exception:  # noqa: BLE001  a timeout is counted as such
            samples.append({"user": user, "page": PAGES[slug], "seconds": None})
        current = slug


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


async def main_async(args) -> dict:
    from playwright.async_api import async_playwright

    os.environ["TRANSFERLAB_MAX_TRAININGS"] = str(args.workers)
    base = Path(tempfile.mkdtemp(prefix="load-"))
    folder = base / "server"
    folder.mkdir()
    load_before = rs.load()
    server, url = rs.start_server(folder, None)
    samples: list[dict] = []
    t_start = time.time()
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=rs.CHROMIUM, args=rs.CHROMIUM_ARGS)
            users = []
            for _ in range(args.users):  # one at a time: the first visit builds the sample and caches
                users.append(await open_user(browser, url, args.timeout))
            print(f"{args.users} users connected after {time.time() - t_start:.0f} s", flush=True)
            stop = asyncio.Event()
            trainers = min(args.jobs, len(users))

            def browsing(first: int, last: int) -> list:
                return [asyncio.create_task(browse(i, users[i][1], stop, args.think, args.timeout, samples))
                        for i in range(first, last)]

            tasks = browsing(trainers, len(users))  # the others browse while the trainings are started
            for job in range(args.jobs):  # with fewer users than jobs, some start two
                await start_training(users[job % len(users)][1], args.epochs, args.timeout)
            print(f"{args.jobs} trainings started after {time.time() - t_start:.0f} s", flush=True)
            tasks += browsing(0, trainers)
            deadline = time.time() + args.max_minutes * 60
            while time.time() < deadline:
                await asyncio.sleep(5)
                states = [s.get("state") for s in run_states(folder).values()]
                print(f"{time.time() - t_start:5.0f} s  runs {len(states)}: "
                      + ", ".join(f"{k} {states.count(k)}" for k in sorted(set(states), key=str))
                      + f"  page loads {len(samples)}  load {rs.load()}", flush=True)
                if len(states) >= args.jobs and all(s in FINAL for s in states):
                    break
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await browser.close()
    finally:
        rs.stop_server(server)
    runs = run_states(folder)
    times = [s["seconds"] for s in samples if s["seconds"] is not None]
    result = {
        "users": args.users, "jobs": args.jobs, "workers": args.workers, "epochs": args.epochs,
        "think_s": args.think, "wall_s": round(time.time() - t_start, 1),
        "page_loads": len(samples), "timeouts": sum(1 for s in samples if s["seconds"] is None),
        "p50_s": round(statistics.median(times), 2) if times else None,
        "p95_s": round(percentile(times, 0.95), 2) if times else None,
        "per_page_p50_s": {page: round(statistics.median(v), 2) for page in PAGES.values()
                           if (v := [s["seconds"] for s in samples if s["page"] == page and s["seconds"]])},
        "runs": {name: {"state": s.get("state"), "error": s.get("error"),
                        "seconds": round(s["finished"] - s["started"], 1) if s.get("finished") else None}
                 for name, s in sorted(runs.items())},
        "all_jobs_accounted_for": len(runs) == args.jobs and all(s.get("state") in FINAL for s in runs.values()),
        "load_before": load_before, "load_after": rs.load(), "server_log": str(folder / "streamlit.log"),
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=7, help="trainings started (by the first users)")
    parser.add_argument("--workers", type=int, default=2, help="TRANSFERLAB_MAX_TRAININGS")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--think", type=float, default=8.0, help="mean seconds between a user's clicks")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a page may take before it counts as a timeout")
    parser.add_argument("--max-minutes", type=float, default=30.0)
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    for name, run in result["runs"].items():
        print(f"run {name}: {run['state']}" + (f" ({run['seconds']} s)" if run["seconds"] else "")
              + (f" — {run['error']}" if run["error"] else ""))
    print(f"| users | trainings | at once | page loads | timeouts | p50 (s) | p95 (s) | all jobs ended | wall (s) | load before → after |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {result['users']} | {result['jobs']} | {result['workers']} | {result['page_loads']} | {result['timeouts']} "
          f"| {result['p50_s']} | {result['p95_s']} | {result['all_jobs_accounted_for']} | {result['wall_s']} "
          f"| {result['load_before']} → {result['load_after']} |")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
