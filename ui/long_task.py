"""A long computation run in the page's script: a start button, a Cancel button that is enabled
only while it runs, a progress bar, a place for its results, and its state kept in the session.

    task = LongTask("vis_acc", t("Measure"), subject={"run": run_id})
    if task.started:
        ...  # compute, calling task.progress(fraction, text), keeping results in task.work
        task.done()
    if task.work: ...  # show the results (this run's, or the last finished or stopped one)

Cancel works without threads: clicking it (like any widget) makes Streamlit end the running
script at its next page update, i.e. at the next progress update; its callback first marks the
work cancelled, so the new script run shows what had been reached instead of starting again.
Work still marked running when a script run starts was ended by another click or by leaving the
page: it is marked interrupted.
"""
from __future__ import annotations

import time

import streamlit as st

from ui.i18n import t


class LongTask:
    """The widgets and the state of the long computation named `key`, about `subject` (e.g. the
    run and the class it is computed for: the stored work is shown only for the same subject).
    `label` (the start button's) and the progress texts are shown as given: pass them through t()."""

    def __init__(self, key: str, label: str, subject: dict):
        self.key, self.subject = key, subject
        _settle(key)
        left, right, _ = st.columns([2, 1, 3])
        self.started = left.button(label, key=f"{key}_start", type="primary", width="stretch")
        self._cancel_slot = right.empty()
        self._cancel_slot.button(t("Cancel"), key=f"{key}_cancel", disabled=not self.started, on_click=_cancel,
                                 args=(key,), width="stretch")
        self.bar, self.view = st.empty(), st.empty()
        self._throttle = Throttle()
        if self.started:
            st.session_state[_state_key(key)] = {"status": "running", "started": time.time(), **subject}

    @property
    def work(self) -> dict | None:
        """The computation's state and results if it is about this subject: "status" is running (in
        this script run), done, cancelled or interrupted; the page keeps its results beside it."""
        work = st.session_state.get(_state_key(self.key))
        if work is None or any(work.get(k) != v for k, v in self.subject.items()):
            return None
        return work

    def progress(self, fraction: float, text: str, force: bool = False) -> None:
        """Move the bar (at most every quarter second unless forced: an engine callback can fire
        faster than the page can redraw)."""
        if self._throttle(force):
            self.bar.progress(min(max(fraction, 0.0), 1.0), text=text)

    def done(self) -> None:
        """Mark the work done, remove the bar, and disable Cancel again."""
        work = st.session_state[_state_key(self.key)]
        work.update(status="done", seconds=time.time() - work["started"])
        self.bar.empty()
        self._cancel_slot.button(t("Cancel"), key=f"{self.key}_cancel_idle", disabled=True, width="stretch")


def _state_key(key: str) -> str:
    return f"{key}_work"


def _cancel(key: str) -> None:
    work = st.session_state.get(_state_key(key))
    if work is not None and work.get("status") == "running":
        work["status"] = "cancelled"


def _settle(key: str) -> None:
    """At the start of a script run, work still marked running was ended by a click elsewhere."""
    work = st.session_state.get(_state_key(key))
    if work is not None and work.get("status") == "running":
        work["status"] = "interrupted"


class Throttle:
    """True at most every `seconds` (and always the first time and when forced): page updates from
    an engine callback that fires every step would otherwise cost more than the steps."""

    def __init__(self, seconds: float = 0.25):
        self.seconds, self.last = seconds, 0.0

    def __call__(self, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now - self.last >= self.seconds:
            self.last = now
            return True
        return False
