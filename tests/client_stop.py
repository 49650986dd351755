"""Stopping a real-time client mid-motion in tests, whatever the machine's load."""

from __future__ import annotations

import threading
import time

from robot_client.loop import RealTimeClient


def stop_once_moving(client: RealTimeClient, chunks: int = 3, settle_s: float = 0.5,
                     timeout_s: float = 60.0) -> threading.Thread:
    """Call `client.stop()` `settle_s` after the client has received `chunks` chunks (so the arm is moving on
    the policy's plan), not at a fixed wall-clock time: on a loaded machine the handshake and the first chunk
    can take seconds, and a stop before any motion tests nothing. Stops anyway after `timeout_s`."""

    def watch() -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not client.stop_requested:
            stats = client.stats
            if stats is not None and stats.chunks_received >= chunks:
                time.sleep(settle_s)
                break
            time.sleep(0.01)
        client.stop()

    thread = threading.Thread(target=watch, name="stop-once-moving", daemon=True)
    thread.start()
    return thread
