"""CurveZMQ: an authorized client is served, a client with an unknown key is rejected."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from vla_async.config import NetworkConfig
from vla_async.keys import main as keys_main
from vla_async.local_server import LocalServer
from vla_async.messages import Observation
from vla_async.reference_specs import reference_robot_spec
from vla_async.transport import PolicyClient, ReceivedChunk

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
ROBOT = reference_robot_spec(image_size=(8, 8))


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    for name in ("server", "robot", "stranger"):
        assert keys_main(["--dir", str(root), "--name", name]) == 0
    authorized = root / "authorized"
    authorized.mkdir()
    shutil.copy(root / "robot.key", authorized / "robot.key")
    return root


def _net(keys, port: int, client: str) -> NetworkConfig:
    return NetworkConfig(port=port, curve={"enabled": True, "server_public_key": str(keys / "server.key"),
                                           "client_secret_key": str(keys / f"{client}.key_secret")})


def test_secret_key_files_are_private(keys):
    assert (keys / "robot.key_secret").stat().st_mode & 0o777 == 0o600


def test_authorized_client_is_served_and_unknown_key_is_rejected(keys):
    args = ["--backend.options.image_size=[8,8]", "--log_level=warning", "--network.curve.enabled=true",
            f"--network.curve.server_secret_key={keys / 'server.key_secret'}",
            f"--network.curve.authorized_keys_dir={keys / 'authorized'}"]
    with LocalServer(args) as server:
        stranger = PolicyClient(_net(keys, server.port, "stranger"), "stranger", ROBOT)
        with pytest.raises(TimeoutError, match="CURVE key not authorized"):
            stranger.connect(1.5)
        with PolicyClient(_net(keys, server.port, "robot"), "robot", ROBOT) as client:
            client.connect(10)
            client.submit(Observation(1, 0, 0, np.zeros(14, np.float32),
                                      {c.name: np.zeros(c.shape, np.uint8) for c in ROBOT.cameras}))
            assert client.wait(5.0)
            (item,) = client.poll()
            assert isinstance(item, ReceivedChunk)
