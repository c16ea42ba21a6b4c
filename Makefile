# callworker: `make demo` sets everything up and runs the demo; `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: install demo run simulate test test-unit test-faults bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/callworker demo

run: install
	$(BIN)/callworker run

simulate: install
	$(BIN)/callworker simulate

bench: install
	$(BIN)/python bench/run.py

test: install
	$(BIN)/pytest -q

test-faults: install
	$(BIN)/pytest -q tests/faults

test-unit: install
	$(BIN)/pytest -q tests/unit

lint: install
	$(BIN)/ruff check callworker tests
	$(BIN)/mypy callworker tests

clean:
	rm -rf $(VENV) callworker.sqlite3* .pytest_cache
