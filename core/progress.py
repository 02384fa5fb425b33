"""How far a whole training has come and how long the rest will take, from measured rates.

The training announces its plan (the phases still to come, each with how many images or batches
it will process and what kind of work that is) and reports progress within the current phase. A
rate is measured per kind of work; a phase not started yet is estimated from the rate of its kind
when one was measured, else from a related one (an evaluation sends images through the whole
model as feature extraction does). The estimate is a range, narrow when every phase left has a
measured rate and wide when some are guesses, and unknown while nothing has been measured: the
machine may be shared, so nothing is assumed about its speed.

No TensorFlow and no Streamlit: core.jobs holds one RunProgress per job.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

# Kinds of work: what one unit is, and how an unmeasured kind is estimated from a measured one.
IMAGES, BATCHES = "images", "batches"
UNIT = {"scan": IMAGES, "decode": IMAGES, "forward": IMAGES, "cache": IMAGES, "evaluate": IMAGES,
        "head": BATCHES, "fine-tune": BATCHES, "train": BATCHES}
# kind -> (measured kind it is guessed from, seconds per unit = factor * that kind's seconds per unit)
GUESSES = {"evaluate": ("forward", 1.0), "forward": ("evaluate", 1.0), "fine-tune": ("forward", 32.0),
           "head": ("forward", 0.05)}
# The kind of work of each phase the training names (core.training), unless its plan says otherwise
# (features read from the feature cache are "cache").
PHASE_KINDS = {"scan": "scan", "decode": "decode", "features (train)": "forward", "features (validation)": "forward",
               "head": "head", "fine-tune": "fine-tune", "train": "train", "evaluate": "evaluate"}
MIN_SAMPLE_SECONDS = 0.5  # a rate measured over less time is too noisy to extrapolate from
SAME_WORK, GUESSED = (0.85, 1.3), (0.6, 2.0)  # the range around an estimate
THUMBNAILS = 4


@dataclass
class Step:
    phase: str   # the phase's name (an N_ msgid)
    units: int   # images or batches it will process
    kind: str    # a key of UNIT


class RunProgress:
    """The plan and the measurements of one run. Not thread-safe: the job calls it under its lock."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._plan: list[Step] = []
        self._phase, self._kind = "", ""
        self._done, self._total, self._started = 0.0, 0.0, clock()
        self._items: list[str] = []
        self._seconds_per_unit: dict[str, float] = {}

    def plan(self, steps: list[Step]) -> None:
        """The phases still to come after the current one, in order (replaces any earlier plan)."""
        self._plan = [s for s in steps if s.units > 0]

    def begin(self, phase: str) -> None:
        """The current phase ends (its rate is kept) and `phase` starts; the plan's step for it is taken off."""
        self._measure()
        step = next((s for s in self._plan if s.phase == phase), None)
        if step is not None:
            self._plan.remove(step)
        self._phase, self._kind = phase, step.kind if step else PHASE_KINDS.get(phase, "")
        self._done, self._total, self._started, self._items = 0.0, float(step.units) if step else 0.0, self._clock(), []

    def update(self, done: float, total: float, items: list[str] | None = None) -> None:
        self._done, self._total = done, total
        if items:
            self._items = list(items[:THUMBNAILS])
        self._measure(keep_phase=True)

    def _measure(self, keep_phase: bool = False) -> None:
        elapsed = self._clock() - self._started
        if self._kind and self._done > 0 and elapsed >= (MIN_SAMPLE_SECONDS if keep_phase else 0):
            if self._kind != "cache":
                self._seconds_per_unit[self._kind] = elapsed / self._done

    def seconds_per_unit(self, kind: str) -> tuple[float | None, bool]:
        """(seconds per unit, guessed?) for a kind of work; None when nothing tells."""
        if kind == "cache":
            return 0.0, False
        if kind in self._seconds_per_unit:
            return self._seconds_per_unit[kind], False
        source, factor = GUESSES.get(kind, ("", 0.0))
        if source in self._seconds_per_unit:
            return self._seconds_per_unit[source] * factor, factor != 1.0  # 1.0: the same work, as good as measured
        return None, True

    def remaining(self) -> tuple[float, float] | None:
        """(low, high) seconds left for the whole run; None until the current phase has a measured rate
        (and before the run has a phase or a plan: nothing to go by)."""
        if not self._kind and not self._plan:
            return None
        here, guessed = self.seconds_per_unit(self._kind) if self._kind else (None, True)
        if here is None and self._total > self._done:
            return None
        seconds = (here or 0.0) * max(0.0, self._total - self._done)
        for step in self._plan:
            rate, guess = self.seconds_per_unit(step.kind)
            seconds += (rate or 0.0) * step.units  # nothing to go by yet: left out, and the range widened
            guessed = guessed or guess
        low, high = GUESSED if guessed else SAME_WORK
        return seconds * low, seconds * high

    def snapshot(self) -> dict:
        """What the UI shows: the phase, done of total, rate, the whole run's ETA range, a few images."""
        rate = self._seconds_per_unit.get(self._kind)
        eta = self.remaining()
        return {"phase": self._phase, "done": int(self._done), "total": int(self._total),
                "unit": UNIT.get(self._kind, ""), "per_second": (1.0 / rate) if rate else None,
                "eta_range": list(eta) if eta else None, "images": list(self._items),
                "next": [s.phase for s in self._plan]}
