"""The one policy-server launcher: ready with a port, output kept and logged, start-up failure explained."""

from __future__ import annotations

from pathlib import Path

import pytest

from vla_async.local_server import LocalServer

pytestmark = [pytest.mark.integration]


@pytest.mark.timeout(60)
def test_server_starts_on_a_free_port_and_logs_to_file(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with LocalServer(["--backend.name=linear"], log_path=log) as server:
        assert server.port > 0 and server.alive()
        assert f"listening on tcp://127.0.0.1:{server.port}" in server.output()
    assert not server.alive()
    assert "listening on" in log.read_text()


@pytest.mark.timeout(60)
def test_bad_server_arguments_raise_with_the_servers_message() -> None:
    with pytest.raises(RuntimeError, match="no_such_field"):
        LocalServer(["--no_such_field=1"], startup_timeout_s=30.0)

