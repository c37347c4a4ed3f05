"""Admission control: when this process is saturated, a new dialogue gets a polite END
at once, and the dialogues already started are served first.

A gateway gives a customer a few seconds per screen; a request queued behind a backlog
times out on the handset and shows the customer an error, which is what "maximum
simultaneous connections reached" looked like from a feature phone. Turning away the
newcomer (who can dial again, or register by SMS) keeps the answer time of everyone
already in a dialogue within the gateway's patience.

Saturated means: more hops in flight than GUICHET_ADMISSION_MAX_IN_FLIGHT (0: no bound),
or the recent hop time (a moving average over the hops just served, forgotten after a
quiet second) above GUICHET_ADMISSION_LATENCY (seconds; 0: no bound). Per process: each
serving process knows its own load, with no round trip to ask.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SMOOTHING = 0.1  # weight of the last hop in the moving average (about the last 20 hops)
FORGET_AFTER = 1.0  # seconds without a finished hop after which the average is stale


@dataclass
class Admission:
    max_in_flight: int = 0  # 0: no bound
    latency_bound: float = 0.0  # seconds; 0: no bound
    in_flight: int = 0
    average: float = 0.0  # seconds, moving average of recent hop times
    refused: int = 0  # new dialogues turned away since start
    _last_done: float | None = None  # when a hop last finished
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def admit(self, opening: bool, now: float | None = None) -> bool:
        """Count a hop in; False (nothing counted) for a new dialogue while saturated."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if opening and self._saturated(now):
                self.refused += 1
                return False
            self.in_flight += 1
            return True

    def done(self, seconds: float, now: float | None = None) -> None:
        """Count a hop admitted by ``admit`` out, with the time it took."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self.in_flight -= 1
            fresh = self._last_done is not None and now - self._last_done <= FORGET_AFTER
            self.average = self.average + SMOOTHING * (seconds - self.average) if fresh else seconds
            self._last_done = now

    def _saturated(self, now: float) -> bool:
        if self.max_in_flight and self.in_flight >= self.max_in_flight:
            return True
        recent = self._last_done is not None and now - self._last_done <= FORGET_AFTER
        return bool(self.latency_bound) and recent and self.average > self.latency_bound

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Admission:
        return cls(max_in_flight=int(config["ADMISSION_MAX_IN_FLIGHT"] or 0),
                   latency_bound=float(config["ADMISSION_LATENCY"] or 0.0))
