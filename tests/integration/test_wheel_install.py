"""The install a new user does, in a fresh venv: the wheel built from a git URL of this checkout, core only
(a robot computer: no MuJoCo, no torch). The shipped configs resolve by name, `--help` lists the presets,
robot.kind=sim says in one line that MuJoCo is missing, and the installed client core runs against a
policy server started from the development venv on 127.0.0.1. `pip install ".[sim]"` is resolved (dry run).

Slow (~1–2 min: a venv and the core dependencies from the package index); marked slow + integration.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vla_async.config import strategy_names
from vla_async.local_server import LocalServer, backend_args

pytestmark = [pytest.mark.slow, pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]
_IGNORE = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "runs", "out", "*.egg-info", "__pycache__",
                                 ".pytest_cache", ".hypothesis", ".ruff_cache", "*.mp4")

CLIENT_CORE = """
import json, sys
import vla_async, robot_client
from robot_client.kinematic_robot import KinematicRobot, kinematic_spec
from robot_client.loop import RealTimeClient
from vla_async.config import ClientConfig, load_config
port = int(sys.argv[1])
config = load_config(ClientConfig, None, [f"--network.port={port}", "--log.live_status=false", "--duration_s=2"])
robot = KinematicRobot(kinematic_spec(6, 30.0))
with robot:
    summary = RealTimeClient(config, robot, connect_timeout_s=60).run()
print(json.dumps({"file": vla_async.__file__, "strategy": config.strategy.name, "chunks": summary.chunks_received,
                  "ticks": summary.ticks, "sys_modules": sorted(m for m in ("torch", "mujoco") if m in sys.modules)}))
"""


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _source_repo(tmp_path: Path) -> Path:
    """This working tree (committed or not) as a one-commit git repository: what a git URL would serve. In a git
    checkout, the files git sees (tracked or not, minus what it ignores, .git/info/exclude included), so a local
    run folder or data link is not copied; elsewhere the tree minus the usual build and run folders."""
    src = tmp_path / "src"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True)
    if listed.returncode != 0:
        shutil.copytree(ROOT, src, ignore=_IGNORE)
    else:
        for name in filter(None, listed.stdout.decode().split("\0")):
            path = ROOT / name
            if path.is_file() and not path.is_symlink():  # a deleted, uncommitted file is still in the index
                (src / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, src / name)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "snapshot"]):
        subprocess.run([*git, *cmd], cwd=src, check=True, capture_output=True)
    return src


@pytest.mark.timeout(900)
def test_core_install_from_a_git_url_runs_the_client(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    src = _source_repo(tmp_path)
    dist, venv, work = tmp_path / "dist", tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist),
                  f"git+file://{src}"], work, env)
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("vla_async-*.whl")
    assert _run([sys.executable, "-m", "venv", str(venv)], work, env).returncode == 0
    py, cli = str(venv / "bin" / "python"), str(venv / "bin" / "vla-async")
    installed = _run([py, "-m", "pip", "install", "-q", str(wheel)], work, env)
    assert installed.returncode == 0, installed.stderr
    assert _run([py, "-c", "import mujoco"], work, env).returncode != 0  # a robot computer: no simulator
    assert _run([py, "-c", "import torch"], work, env).returncode != 0

    helped = _run([cli, "client", "--help"], work, env, timeout=120)
    presets = f"--strategy.preset=<{' | '.join(strategy_names())}>"  # every preset YAML made it into the wheel
    assert helped.returncode == 0 and presets in helped.stdout
    sim_robot = _run([cli, "client", "--config", "client/sim", "--network.port=1"], work, env, timeout=120)
    assert sim_robot.returncode == 2
    assert sim_robot.stderr.strip().count("\n") == 0 and "robot.kind=sim needs the MuJoCo simulator" in sim_robot.stderr
    demo = _run([cli, "demo"], work, env, timeout=120)
    assert demo.returncode == 2 and "missing dependency" in demo.stderr and "Traceback" not in demo.stderr

    with LocalServer(backend_args("linear", _kinematic_spec()), log_path=tmp_path / "server.log") as server:
        ran = _run([py, "-c", CLIENT_CORE, str(server.port)], work, env, timeout=300)
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    assert result["file"].startswith(str(venv)) and result["strategy"] == "vlash_rail"
    assert result["chunks"] >= 1 and result["ticks"] > 0 and result["sys_modules"] == []

    with_sim = _run([py, "-m", "pip", "install", "--dry-run", "-q", f"{src}[sim]"], work, env)
    assert with_sim.returncode == 0, with_sim.stderr


def _kinematic_spec():
    from robot_client.kinematic_robot import kinematic_spec

    return kinematic_spec(6, 30.0)
