"""The fleet on a real, private Ray head (127.0.0.1): `vla-async fleet up|status|down` in child processes,
robots as real PolicyClients asking the HTTP route. One head for the module (start-up costs ~10-60 s on a
loaded 2-core machine): assignment and stickiness, scale-up 1 → 2 as robots join (autoscale from the
registry's load), failover after SIGKILL of a replica, scale back down when robots leave, and `down`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from vla_async.config import NetworkConfig
from vla_async.local_ray import LocalRayHead, free_ports
from vla_async.local_server import backend_args, wait_until
from vla_async.messages import Observation
from vla_async.reference_specs import joint_names
from vla_async.specs import RobotSpec
from vla_async.transport import PolicyClient, ReceivedChunk

pytestmark = [pytest.mark.fleet, pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[2]
NAMES = joint_names(6)
ROBOT = RobotSpec(name="kin", fps=30.0, state_names=NAMES, action_names=NAMES,
                  position_limits=tuple((-3.0, 3.0) for _ in NAMES))


@pytest.fixture(scope="module")
def head():
    with LocalRayHead(num_cpus=4, nice=5) as h:
        yield h


def fleet(head: LocalRayHead, *args: str, timeout_s: float = 400) -> subprocess.CompletedProcess:
    env = {**os.environ, **head.env}
    return subprocess.run([sys.executable, "-m", "vla_async.cli", "fleet", args[0], f"--address={head.address}",
                           *args[1:]], capture_output=True, text=True, timeout=timeout_s, env=env, cwd=ROOT)


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=20) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def live(base: str) -> list[dict]:
    return [r for r in get(base + "/status")[1]["replicas"] if r["live"]]


def reporting(base: str) -> int:
    """Replicas whose last report is recent (a replica Serve removed unregisters; a killed one goes quiet)."""
    return sum(1 for r in get(base + "/status")[1]["replicas"] if r["report_age_s"] < 3.0)


def chunk_after(client: PolicyClient, rid: int, after: float, timeout_s: float) -> ReceivedChunk | None:
    """Submit requests from `rid` until a chunk received after `after` arrives."""
    end = time.monotonic() + timeout_s
    client.submit(Observation(rid, rid, rid, np.zeros(6, np.float32), {}))
    while time.monotonic() < end:
        client.wait(0.2)
        for item in client.poll():
            if isinstance(item, ReceivedChunk) and item.received_at > after:
                return item
            rid += 1
            client.submit(Observation(rid, rid, rid, np.zeros(6, np.float32), {}))
    return None


def test_fleet_assigns_sticks_scales_up_fails_over_and_scales_down(head):
    port = free_ports(1)[0]
    base = f"http://127.0.0.1:{port}"
    up = fleet(head, "up", "--autoscale=1-2", "--robots-per-replica=2", f"--http-port={port}",
               "--upscale-delay=1", "--downscale-delay=4", "--cpus-per-replica=0.5",
               *backend_args("linear", ROBOT), "--log_level=warning")
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"{base}/route" in up.stdout
    clients: list[PolicyClient] = []
    try:
        # assignment: two robots on the one replica; stickiness: asking again gives the same one
        assert len(live(base)) == 1
        net = NetworkConfig(route_url=f"{base}/route", port=1)
        for name in ("arm0", "arm1"):
            clients.append(PolicyClient(net, name, ROBOT))
            clients[-1].connect(60)
        first = clients[0].server_address
        assert clients[1].server_address == first
        assert get(f"{base}/route?robot=arm0")[1]["port"] == int(first.split(":")[1])
        assert get(f"{base}/route?robot=bad%20name")[0] == 400

        # scale-up: 4 robots > 2 per replica → Serve starts a second replica (the registry's load)
        for name in ("arm2", "arm3"):
            clients.append(PolicyClient(net, name, ROBOT))
            clients[-1].connect(60)
        assert wait_until(lambda: len(live(base)) == 2, timeout_s=240, interval_s=1.0), get(base + "/status")
        second = next(r["address"] for r in live(base) if r["address"] != first)
        newcomer = PolicyClient(net, "arm4", ROBOT)
        clients.append(newcomer)
        newcomer.connect(60)
        assert newcomer.server_address == second  # least loaded

        # failover: SIGKILL the replica of arm0..arm3; they resume on the other one
        pid = next(r["pid"] for r in live(base) if r["address"] == first)
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        for i, client in enumerate(clients[:4]):
            assert chunk_after(client, 1000 * (i + 1), killed_at, 60) is not None, client.stats
            assert client.server_address == second
            assert client.stats["disconnects"] >= 1
        assert newcomer.stats["reconnects"] == 0  # its replica was not touched

        status = fleet(head, "status")
        assert status.returncode == 0 and second in status.stdout, status.stdout + status.stderr
        # Serve replaces the killed replica (autoscale target still 2: five robots)
        assert wait_until(lambda: len(live(base)) == 2, timeout_s=240, interval_s=1.0), get(base + "/status")
    finally:
        for client in clients:
            client.close()

    # scale back: the robots left; their sessions expire, the registry's load drops to 0 and Serve removes a
    # replica (it unregisters; the killed one's last report is old): one replica still reporting, twice in a row
    assert wait_until(lambda: reporting(base) == 1 and time.sleep(3) is None and reporting(base) == 1,
                      timeout_s=240, interval_s=1.0), get(base + "/status")
    down = fleet(head, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert wait_until(lambda: _route_gone(base), timeout_s=60, interval_s=1.0)


def _route_gone(base: str) -> bool:
    try:
        return get(base + "/status")[0] != 200
    except (urllib.error.URLError, OSError, ValueError):
        return True
