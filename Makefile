# StreamPulse: the two commands a newcomer runs are `make run` and `make test`.
# Both create .venv inside the repo and install everything from the lock files.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test stack worker simulate lint bench schemas-register schemas-check clean

$(STAMP): requirements.lock requirements-dev.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

## The main job on the embedded stack; DURATION=<s> stops it (0 or unset: until Ctrl-C).
run: $(STAMP)
	$(BIN)/python -m app.tools.run $(if $(DURATION),--duration $(DURATION),)

## The whole test suite (CI calls this).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

## Only the embedded broker and registry, in the foreground.
stack: $(STAMP)
	$(BIN)/python -m app.tools.stack

lint: $(STAMP)
	$(BIN)/ruff check .

## The benchmark, everything (about 25 minutes): telemetry comparison, latency, scale, then the
## full eight-topic mix against its floor with latency and a profile (bench/README.md).
bench: $(STAMP)
	$(BIN)/python -m bench.telemetry --latency --scale
	$(BIN)/python -m bench.mix --pairs 3 --profile

schemas-register: $(STAMP)
	$(BIN)/python -m app.schemas register

schemas-check: $(STAMP)
	$(BIN)/python -m app.schemas check

clean:
	rm -rf $(VENV) .stack .pytest_cache .ruff_cache .hypothesis data
