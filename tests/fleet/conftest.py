"""The fleet lane (scripts/fleet_lane.sh): Ray Serve on a private head. Collected only when that script runs it
(VLA_ASYNC_FLEET_LANE=run), so the main lane neither needs Ray nor counts skipped tests."""

import os

if os.environ.get("VLA_ASYNC_FLEET_LANE") != "run":
    collect_ignore_glob = ["test_*.py"]


def pytest_report_header(config):
    if os.environ.get("VLA_ASYNC_FLEET_LANE") != "run":
        return "tests/fleet not collected: run scripts/fleet_lane.sh (or set VLA_ASYNC_FLEET_LANE=run)"
    return None
