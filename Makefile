# The two commands of the README:
#   make demo   set up a fresh machine and run the main job (simulated pick-and-place, async vs sync report)
#   make test   set up a fresh machine and run the whole test suite (+ the LeRobot lane, see scripts/lerobot_lane.sh)
VENV ?= .venv
PY := $(VENV)/bin/python
export MUJOCO_GL ?= egl

.PHONY: setup demo test test-fast lint bench clean

setup:
	bash scripts/setup.sh

demo: setup
	$(VENV)/bin/vla-async demo

test: setup
	$(PY) -m pytest -q --ignore=tests/lerobot  # that lane runs in its own venv, next line
	bash scripts/lerobot_lane.sh

test-fast: setup
	$(PY) -m pytest -q -m "not integration and not slow" --ignore=tests/lerobot

lint: setup
	$(VENV)/bin/ruff check vla_async policy_server robot_client sim tests

bench: setup
	$(VENV)/bin/vla-async bench transport
	$(VENV)/bin/vla-async bench client
	$(VENV)/bin/vla-async bench sim
	$(VENV)/bin/vla-async bench server

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
