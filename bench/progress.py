"""A small progress bar on stderr (one line per finished step when stderr is not a terminal)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Progress over planned seconds of work: ``step()`` starts a step, ``update()`` reports inside it."""

    def __init__(self, planned_seconds: float, stream: TextIO | None = None, width: int = 28) -> None:
        self.planned = max(planned_seconds, 1e-9)
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.width = width
        self.done = 0.0
        self.label = ""
        self.step_seconds = 0.0
        self.started = time.monotonic()
        self._last_draw = 0.0

    def step(self, label: str, seconds: float) -> None:
        self.label = label
        self.step_seconds = seconds
        self.update(0.0, "")

    def update(self, fraction: float, detail: str) -> None:
        now = time.monotonic()
        if not self.tty or (now - self._last_draw < 0.2 and 0 < fraction < 1):
            return
        self._last_draw = now
        total = min(1.0, (self.done + fraction * self.step_seconds) / self.planned)
        filled = int(total * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = now - self.started
        line = f"\r[{bar}] {total:4.0%} {elapsed:4.0f}s  {self.label} {detail}"
        self.stream.write(line[:150].ljust(150))
        self.stream.flush()

    def finish_step(self, summary: str) -> None:
        self.done += self.step_seconds
        if self.tty:
            self.stream.write("\r" + " " * 150 + "\r")
        elapsed = time.monotonic() - self.started
        self.stream.write(f"[{min(1.0, self.done / self.planned):4.0%} {elapsed:4.0f}s] {self.label}: {summary}\n")
        self.stream.flush()
