"""LeRobot 0.4.4's own async inference processes, as `vla-async bench lerobot` starts them:

    python -m sim.lerobot_bench.launch server --host=127.0.0.1 --port=8080 --fps=30 ...
    python -m sim.lerobot_bench.launch client --robot.type=vla_sim_follower ... --policy_type=vla_async ...

`server` is `python -m lerobot.async_inference.policy_server` after two steps the harness takes: it imports the
`lerobot_policy_vla_async` plugin and adds its type to the server's SUPPORTED_POLICIES allow-list (printed).
`client` is `python -m lerobot.async_inference.robot_client` after importing the `lerobot_robot_vla_sim` plugin
(LeRobot's own discovery imports only *installed* `lerobot_*` distributions; this checkout is on PYTHONPATH).
Everything else is LeRobot's code: its gRPC server and RobotClient, their threads, queue and aggregation.
"""

from __future__ import annotations

import sys

POLICY_TYPE = "vla_async"


def serve(argv: list[str]) -> None:
    from lerobot.async_inference import constants, policy_server

    import lerobot_policy_vla_async  # noqa: F401 - registers the `vla_async` policy type

    if POLICY_TYPE not in constants.SUPPORTED_POLICIES:
        constants.SUPPORTED_POLICIES.append(POLICY_TYPE)  # the same list object policy_server checks
    print(f"bench harness: SUPPORTED_POLICIES extended with {POLICY_TYPE!r}: {policy_server.SUPPORTED_POLICIES}",
          flush=True)
    sys.argv = ["policy_server", *argv]
    policy_server.serve()


def client(argv: list[str]) -> None:
    from lerobot.async_inference import robot_client
    from lerobot.utils.import_utils import register_third_party_plugins

    import lerobot_robot_vla_sim  # noqa: F401 - registers the `vla_sim_follower` robot type

    register_third_party_plugins()  # as robot_client's __main__ does
    sys.argv = ["robot_client", *argv]
    robot_client.async_client()


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("server", "client"):
        print("usage: python -m sim.lerobot_bench.launch server|client [LeRobot's arguments]", file=sys.stderr)
        return 2
    try:
        (serve if argv[0] == "server" else client)(argv[1:])
    except KeyboardInterrupt:  # how the harness stops both (LeRobot's client runs until interrupted)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
