"""A correct robot that connects while the fuzz attack runs, in a process of its own.

`python -m vla_async.fuzz.late_client --port P` starts (imports done), prints `ready` and waits for
`connect` on stdin; then it connects a real PolicyClient (the fuzz campaign's CorrectClient, requesting at
`--rate` Hz) and prints one JSON line: `{"connected": true}`, or `{"connected": false, "error": ...}` and
exits. It then reads commands on stdin: `after` (its later replies count as after the attack), `stop`
(it stops and prints its summary as one JSON line).

Why a process: the campaign measures the first correct client's reply latency before vs during the
attack. A second client in the measuring process would share its interpreter (GIL) only during the
attack, so part of the "during" latency would be the measurement's own doing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=30.0, help="requests per second")
    parser.add_argument("--image-size", type=int, nargs=2, default=(8, 8))
    args = parser.parse_args(argv)

    from vla_async.config import NetworkConfig
    from vla_async.fuzz.campaign import CorrectClient
    from vla_async.reference_specs import reference_robot_spec

    robot = reference_robot_spec(image_size=tuple(args.image_size))
    client = CorrectClient(NetworkConfig(port=args.port, request_timeout_s=10.0), robot, args.rate, phase="during")
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "connect":  # EOF: the campaign is gone
        client.client.close()
        return 0
    try:
        client.start()
    except Exception as exc:  # noqa: BLE001 - refused (server full) or no Welcome in time: reported
        client.client.close()
        print(json.dumps({"connected": False, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}), flush=True)
        return 0
    print(json.dumps({"connected": True}), flush=True)
    for line in sys.stdin:
        if line.strip() == "after":
            client.phase = "after"
        elif line.strip() == "stop":
            break
    client.stop()
    print(json.dumps({"connected": True, **client.summary()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
