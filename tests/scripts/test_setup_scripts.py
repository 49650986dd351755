"""The set-up scripts a new user runs: the apt lock is waited for with a message and then fails with one
clear line; torch is chosen per machine; the README's test line is rewritten from pytest's own output."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCK_ERROR = ("E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (unattended-upgr)\n"
              "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?")


def _fake_apt(tmp_path: Path, locked_calls: int, other_error: str = "") -> dict[str, str]:
    """An apt-get on PATH that reports the real lock error for its first `locked_calls` calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    counter = tmp_path / "calls"
    counter.write_text("0")
    script = f"""#!/usr/bin/env bash
n=$(cat {counter}); echo $((n + 1)) > {counter}
if [ -n "{other_error}" ]; then echo "{other_error}" >&2; exit 100; fi
if [ "$n" -lt {locked_calls} ]; then printf '%s\\n' "{LOCK_ERROR}" >&2; exit 100; fi
exit 0
"""
    (bin_dir / "apt-get").write_text(script)
    (bin_dir / "apt-get").chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "APT_LOCK_POLL_S": "0.1"}


def _apt(env: dict[str, str], **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(ROOT / "scripts/apt_install.sh"), "libegl1"], capture_output=True, text=True,
                          env={**env, **extra}, timeout=60)


def test_apt_lock_is_waited_for_with_one_message(tmp_path: Path) -> None:
    proc = _apt(_fake_apt(tmp_path, locked_calls=3), APT_LOCK_TIMEOUT_S="30")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("waiting for the apt lock") == 1 and "Could not get lock" not in proc.stdout + proc.stderr


def test_apt_lock_held_too_long_is_one_clear_error(tmp_path: Path) -> None:
    proc = _apt(_fake_apt(tmp_path, locked_calls=10_000), APT_LOCK_TIMEOUT_S="1")
    assert proc.returncode == 1
    err = proc.stderr.strip()
    assert "\n" not in err and "holds" not in err and "has held the apt lock" in err and "re-run" in err
    assert "apt-get install libegl1" in err


def test_other_apt_errors_are_reported_not_waited_for(tmp_path: Path) -> None:
    proc = _apt(_fake_apt(tmp_path, 0, other_error="E: Unable to locate package libegl1"), APT_LOCK_TIMEOUT_S="30")
    assert proc.returncode == 1 and "waiting" not in proc.stdout
    assert "Unable to locate package libegl1" in proc.stderr


def _torch_plan(env: dict[str, str]) -> list[str]:
    venv = str(Path(sys.executable).parents[1])
    proc = subprocess.run(["bash", str(ROOT / "scripts/setup.sh"), "torch-plan"], capture_output=True, text=True,
                          env={**env, "VENV": venv}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


@pytest.mark.slow
def test_torch_choice_per_machine(tmp_path: Path) -> None:
    no_local = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"} | {"PIP_CONFIG_FILE": os.devnull}
    assert _torch_plan({**os.environ, "VLA_ASYNC_TORCH": "torch==2.13.0"}) == ["torch==2.13.0"]
    # no local wheel, no GPU: the CPU build; with a GPU: plain PyPI (the CUDA build)
    assert _torch_plan(no_local) == ["torch>=2.2", "--index-url", "https://download.pytorch.org/whl/cpu"]
    gpu = tmp_path / "gpu"
    gpu.mkdir()
    (gpu / "nvidia-smi").write_text("#!/bin/sh\nexit 0\n")
    (gpu / "nvidia-smi").chmod(0o755)
    assert _torch_plan({**no_local, "PATH": f"{gpu}:{os.environ['PATH']}"}) == ["torch>=2.2"]
    # a wheel in this machine's find-links (as on CI machines): pinned to its version, so pip takes it and
    # resolves its dependencies from the index (a bare --no-index install could not find them)
    links = tmp_path / "wheels"
    links.mkdir()
    _fake_wheel(links, "torch", "9.9.9")
    local = {**no_local, "PIP_FIND_LINKS": str(links)}
    assert _torch_plan(local) == ["torch==9.9.9"]


def test_demo_profile_installs_no_torch() -> None:
    proc = subprocess.run(["bash", str(ROOT / "scripts/setup.sh"), "demo"], capture_output=True, text=True,
                          env={**os.environ, "VLA_ASYNC_SETUP_DRY_RUN": "1", "VENV": "/nonexistent-venv"}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "-e .[demo]" in proc.stdout and "torch" not in proc.stdout
    pyproject = (ROOT / "pyproject.toml").read_text()
    sim_extra = re.search(r'^sim = \[(.*)\]$', pyproject, re.M)
    assert sim_extra is not None and "torch" not in sim_extra.group(1) and "onnx" not in sim_extra.group(1)
    demo_extra = re.search(r'^demo = \[(.*)\]$', pyproject, re.M)  # the sim + onnxruntime for the learned policy
    assert demo_extra is not None and "vla-async[sim]" in demo_extra.group(1) and "onnxruntime" in demo_extra.group(1)
    assert "torch" not in demo_extra.group(1)
    assert re.search(r"^demo: setup-demo$", (ROOT / "Makefile").read_text(), re.M)


def test_lerobot_lane_header_names_the_venv_it_uses() -> None:
    text = (ROOT / "scripts/lerobot_lane.sh").read_text()
    assert ".venv-lerobot" not in text and "~/.cache/vla-async/venv-lerobot" in text
    assert "VENV=${LEROBOT_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/vla-async/venv-lerobot}" in text
    assert "--progress-bar off" in text and "8.6 GB" in text


def test_readme_numbers_from_pytest_output(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import readme_numbers
    finally:
        sys.path.pop(0)
    assert readme_numbers.parse_summary("...\n301 passed, 6 skipped in 101.37s (0:01:41)\n") == (301, 6, 101.37)
    with pytest.raises(ValueError, match="did not pass"):
        readme_numbers.parse_summary("1 failed, 300 passed in 99.0s")
    text = readme_numbers.main_lane_text(301, 6, 101.37, "2.0")
    out = readme_numbers.rewrite("a <!-- main-lane -->old<!-- /main-lane --> b", text)
    assert out == f"a <!-- main-lane -->{text}<!-- /main-lane --> b"
    assert "<!-- main-lane -->" in (ROOT / "README.md").read_text()
def _fake_wheel(folder: Path, name: str, version: str) -> None:
    """The smallest wheel pip accepts: metadata only."""
    info = f"{name}-{version}.dist-info"
    files = {f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{info}/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as whl:
        for path, text in files.items():
            whl.writestr(path, text)
