"""`vla-async fleet`: bad arguments are one line and need neither Ray nor a cluster."""

from __future__ import annotations

import sys

import pytest

from policy_server.fleet.cli import main


def test_no_command_is_usage(capsys):
    assert main([]) == 2
    assert "up|status|down" in capsys.readouterr().err


@pytest.mark.parametrize("argv,expect", [
    (["up", "--autoscale=3-1"], "want 0 <= LOW <= HIGH"),
    (["up", "--ports=x"], "want LOW-HIGH"),
    (["status", "--replicas=2"], "unrecognized arguments"),
])
def test_bad_flags_are_one_line(argv, expect, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert expect in err and len(err.splitlines()) == 1


def test_a_bad_server_field_fails_before_ray_is_imported(capsys):
    before = "ray" in sys.modules
    assert main(["up", "--backend.no_such_field=1"]) == 2
    assert "no_such_field" in capsys.readouterr().err
    assert ("ray" in sys.modules) == before


def test_help_lists_fleet_options_and_server_fields(capsys):
    assert main(["up", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--autoscale" in out and "--robots-per-replica" in out and "backend.name" in out
