"""Threads that never die silently.

A supervised thread runs its target; if an exception escapes it anyway (every loop catches per
message, so this is a bug or resource exhaustion), the thread logs why, records it as `failure`
and calls `on_failure`, so its owner stops in a controlled way and the process exits non-zero
instead of living on without answering.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable

log = logging.getLogger("vla_async.supervision")


class ThreadSupervisor:
    """Starts named daemon threads; the first one to die sets `failure` and calls `on_failure(failure)`."""

    def __init__(self, owner: str, on_failure: Callable[[str], None] | None = None):
        self.owner = owner
        self.failure: str | None = None
        self._on_failure = on_failure
        self._lock = threading.Lock()

    def spawn(self, target: Callable[[], None], name: str) -> threading.Thread:
        thread = threading.Thread(target=self._run, args=(target, name), name=name, daemon=True)
        thread.start()
        return thread

    def _run(self, target: Callable[[], None], name: str) -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - the point is that nothing escapes unreported
            self.report(name, exc)

    def report(self, name: str, exc: BaseException) -> None:
        text = f"{self.owner}: thread {name!r} died: {type(exc).__name__}: {str(exc)[:300]}"
        log.critical("%s\n%s", text, "".join(traceback.format_exception(exc))[-4000:])
        with self._lock:
            first = self.failure is None
            if first:
                self.failure = text
        if first and self._on_failure is not None:
            try:
                self._on_failure(text)
            except Exception:  # noqa: BLE001 - a failing stop hook must not hide the original failure
                log.exception("%s: stop hook failed", self.owner)


def on_any_thread_death(on_death: Callable[[str], None]) -> Callable[[], None]:
    """Install a `threading.excepthook` for the threads nobody supervises (log writers, status printers,
    a simulator's physics): the death is logged with its traceback and `on_death(text)` is called, so
    the process can stop in a controlled way and exit non-zero. Returns a function that restores the
    previous hook."""
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "?"
        text = f"thread {name!r} died: {args.exc_type.__name__}: {str(args.exc_value)[:300]}"
        log.critical("%s\n%s", text, "".join(traceback.format_exception(
            args.exc_type, args.exc_value, args.exc_traceback))[-4000:])
        on_death(text)

    threading.excepthook = hook

    def restore() -> None:
        threading.excepthook = previous

    return restore
