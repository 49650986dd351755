"""`vla-async keys`: never overwrites without --force; the secret file is 0600 from its creation."""

from __future__ import annotations

import os
import stat

import pytest
import zmq.auth

import vla_async.keys as keys
from vla_async.keys import main


def test_creates_a_loadable_pair_with_a_private_secret(tmp_path):
    assert main(["--dir", str(tmp_path), "--name", "robot"]) == 0
    public, secret = zmq.auth.load_certificate(str(tmp_path / "robot.key_secret"))
    assert secret is not None and zmq.auth.load_certificate(str(tmp_path / "robot.key"))[0] == public
    assert stat.S_IMODE((tmp_path / "robot.key_secret").stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["robot.key", "robot.key_secret"]  # no temp files left


def test_refuses_to_overwrite_without_force(tmp_path, capsys):
    assert main(["--dir", str(tmp_path), "--name", "robot"]) == 0
    before = (tmp_path / "robot.key_secret").read_text()
    assert main(["--dir", str(tmp_path), "--name", "robot"]) == 1
    err = capsys.readouterr().err
    assert "already exist" in err and "--force" in err
    assert (tmp_path / "robot.key_secret").read_text() == before
    assert main(["--dir", str(tmp_path), "--name", "robot", "--force"]) == 0
    assert (tmp_path / "robot.key_secret").read_text() != before
    assert stat.S_IMODE((tmp_path / "robot.key_secret").stat().st_mode) == 0o600


def test_the_secret_is_never_readable_by_others_not_even_before_the_rename(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append((os.path.basename(dst), stat.S_IMODE(os.stat(src).st_mode), os.path.getsize(src)))
        return real_replace(src, dst)

    monkeypatch.setattr(keys.os, "replace", spy)
    keys.make_key_pair(tmp_path, "server")
    modes = dict((name, mode) for name, mode, _ in seen)
    assert modes == {"server.key_secret": 0o600, "server.key": 0o644}
    assert all(size > 0 for *_, size in seen)  # complete before it appears under its name


def test_error_message_names_the_files(tmp_path):
    keys.make_key_pair(tmp_path, "x")
    with pytest.raises(keys.KeyExistsError, match="x.key"):
        keys.make_key_pair(tmp_path, "x")
