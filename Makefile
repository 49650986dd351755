# The two commands of the README:
#   make demo   set up a fresh machine and run the main job (simulated pick-and-place, async vs sync report)
#   make test   set up a fresh machine and run the whole test suite (+ the LeRobot lane, see scripts/lerobot_lane.sh,
#               and the fleet lane: Ray Serve, scripts/fleet_lane.sh)
VENV ?= .venv
PY := $(VENV)/bin/python
export MUJOCO_GL ?= egl

.PHONY: setup setup-demo demo test test-fast lint bench readme-numbers clean

# `make demo` installs only what the demo needs (vla-async[sim], no torch); `make test` everything
# (vla-async[all]; torch chosen per machine, see scripts/setup.sh).
setup-demo:
	bash scripts/setup.sh demo

setup:
	bash scripts/setup.sh test

demo: setup-demo
	$(VENV)/bin/vla-async demo

test: setup
	$(PY) -m pytest -q --ignore=tests/lerobot --ignore=tests/fleet  # those lanes: next lines
	bash scripts/lerobot_lane.sh
	bash scripts/fleet_lane.sh

test-fast: setup
	$(PY) -m pytest -q -m "not integration and not slow" --ignore=tests/lerobot --ignore=tests/fleet

lint: setup
	$(VENV)/bin/ruff check vla_async policy_server robot_client sim tests

# rewrite the README's test-suite line from a fresh run of the main lane
readme-numbers: setup
	$(PY) scripts/readme_numbers.py

bench: setup
	$(VENV)/bin/vla-async bench transport
	$(VENV)/bin/vla-async bench client
	$(VENV)/bin/vla-async bench sim
	$(VENV)/bin/vla-async bench server

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
