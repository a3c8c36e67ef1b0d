"""Background jobs for long work (model training) that must outlive Streamlit reruns.

A :class:`Job` runs ``target(job)`` in a daemon thread. The target reports progress with
``job.report(item)`` (kept in a thread-safe list), names its current step with ``job.set_phase``, and
checks ``job.cancel_event`` to stop early. The page holds the job in ``st.session_state`` and polls it
from an ``st.fragment(run_every=...)``; a rerun never touches the thread. No Streamlit call is made from
the worker thread.
"""

from __future__ import annotations

import itertools
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, Literal

Status = Literal["pending", "running", "done", "cancelled", "failed"]
_ids = itertools.count(1)


class Job:
    """One background run of ``target(job) -> result``."""

    def __init__(self, target: Callable[[Job], Any], *, name: str = "job", meta: dict | None = None) -> None:
        self.id = next(_ids)
        self.name = name
        self.meta: dict = dict(meta or {})  # what the page wants to remember about the run (config …)
        self.cancel_event = threading.Event()
        self._target = target
        self._lock = threading.Lock()
        self._reports: list[Any] = []
        self._status: Status = "pending"
        self._phase = ""
        self.result: Any = None
        self.error: BaseException | None = None
        self.error_trace = ""
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"{name}-{self.id}", daemon=True)

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> Job:
        self.started_at = time.time()
        with self._lock:
            self._status = "running"
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            result = self._target(self)
        except BaseException as exc:  # the page shows it; the thread must not die silently
            with self._lock:
                self.error, self.error_trace = exc, traceback.format_exc()
                self._status = "failed"
        else:
            with self._lock:
                self.result = result
                self._status = "cancelled" if self.cancel_event.is_set() else "done"
        finally:
            self.finished_at = time.time()

    def cancel(self) -> None:
        self.cancel_event.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread; True when it has finished."""
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    # ---------------------------------------------------------------- reporting (worker side)
    def report(self, item: Any) -> None:
        with self._lock:
            self._reports.append(item)

    def set_phase(self, phase: str) -> None:
        with self._lock:
            self._phase = phase

    # ---------------------------------------------------------------- reading (page side)
    def reports(self) -> list[Any]:
        with self._lock:
            return list(self._reports)

    @property
    def status(self) -> Status:
        with self._lock:
            return self._status

    @property
    def phase(self) -> str:
        with self._lock:
            return self._phase

    @property
    def running(self) -> bool:
        return self.status in ("pending", "running")

    @property
    def finished(self) -> bool:
        return self.status in ("done", "cancelled", "failed")

    @property
    def elapsed(self) -> float:
        if self.started_at is None:
            return 0.0
        return (self.finished_at or time.time()) - self.started_at
