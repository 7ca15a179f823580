# mario-dqn: two commands set everything up on a fresh machine.
#   make train   create .venv (Python 3.13), install requirements and the project, train with defaults
#   make test    create .venv, install requirements + test tools and the project, run the whole suite
#   make bench   print throughput / memory figures (not part of the tests)
#   make table   write README's stage table from the shipped agents' JSON (scripts/stage_table.py)
# Pass PYTHON=/path/to/python3.13 to choose the interpreter; otherwise it is found
# by scripts/find-python.sh (python3.13 on PATH, else pyenv's newest 3.13).

VENV        := .venv
VPY         := $(VENV)/bin/python
RUNTIME_OK  := $(VENV)/.runtime-installed
DEV_OK      := $(VENV)/.dev-installed
PROJECT_OK  := $(VENV)/.project-installed
ARGS        ?=
PYTEST_ARGS ?=

.PHONY: train test bench table venv clean-venv help

help:
	@echo "make train | make test | make bench | make table | make venv | make clean-venv"

# The interpreter is only looked up when the venv has to be (re)created.
$(VPY):
	@PY="$$(./scripts/find-python.sh "$(PYTHON)")" || exit 1; \
	echo "creating $(VENV) with $$PY"; \
	"$$PY" -m venv $(VENV)
	@$(VPY) -c 'import sys; assert sys.version_info[:2] >= (3, 13), sys.version' \
		|| { echo "error: $(VENV) is not Python >= 3.13; run 'make clean-venv'" >&2; exit 1; }

# Re-install whenever a requirements file is newer than the stamp.
$(RUNTIME_OK): requirements.txt | $(VPY)
	$(VPY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

$(DEV_OK): requirements-dev.txt $(RUNTIME_OK)
	$(VPY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# The project itself, editable (pyproject.toml): mario_dqn, config and main import from
# this tree, and .venv/bin/mario-dqn runs main.py's CLI. The requirements are already in.
$(PROJECT_OK): $(RUNTIME_OK) pyproject.toml
	$(VPY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

venv: $(DEV_OK) $(PROJECT_OK)

train: $(PROJECT_OK)
	$(VPY) main.py train $(ARGS)

# Two test files at once, one per core (pytest-xdist): a file stays in one worker, so its
# module fixtures are made once; --no-loadscope-reorder keeps tests/conftest.py's order,
# the slowest files first. `pytest tests/test_x.py` alone runs without it; PYTEST_ARGS="-n 0"
# runs the whole suite in one process.
test: $(DEV_OK) $(PROJECT_OK)
	$(VPY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

bench: $(DEV_OK) $(PROJECT_OK)
	$(VPY) benchmarks/run_all.py

# Standard library only: the bare venv's interpreter is enough (no requirements installed).
table: | $(VPY)
	$(VPY) scripts/stage_table.py

clean-venv:
	rm -rf $(VENV)
