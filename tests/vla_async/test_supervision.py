"""No thread dies silently: supervised threads report and stop their owner; others reach a process hook."""

from __future__ import annotations

import threading

from vla_async.supervision import ThreadSupervisor, on_any_thread_death


def test_a_supervised_thread_that_dies_sets_failure_and_calls_the_owner_once():
    calls: list[str] = []
    sup = ThreadSupervisor("owner", on_failure=calls.append)
    for name in ("a", "b"):
        sup.spawn(lambda: 1 / 0, name).join(5)
    assert sup.failure is not None and "thread 'a' died: ZeroDivisionError" in sup.failure
    assert calls == [sup.failure]  # the first death stops the owner; later ones are logged only


def test_a_supervised_thread_that_returns_is_not_a_failure():
    sup = ThreadSupervisor("owner")
    sup.spawn(lambda: None, "fine").join(5)
    assert sup.failure is None


def test_the_hook_reports_unsupervised_threads_and_can_be_restored():
    deaths: list[str] = []
    before = threading.excepthook
    restore = on_any_thread_death(deaths.append)
    try:
        def boom() -> None:
            raise RuntimeError("log writer broke")

        t = threading.Thread(target=boom, name="tick-log")
        t.start()
        t.join(5)
    finally:
        restore()
    assert deaths == ["thread 'tick-log' died: RuntimeError: log writer broke"]
    assert threading.excepthook is before
