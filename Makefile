# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MOTO := .venv-moto
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: run test lint typecheck unit bench clean

$(VENV)/.created:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
		|| { echo "Python 3.11 or newer is needed: make PYTHON=python3.11 ..."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	touch $@

$(VENV)/.run: $(VENV)/.created pyproject.toml constraints.txt
	$(PIP) -e .
	touch $@

$(VENV)/.dev: $(VENV)/.created pyproject.toml constraints.txt
	$(PIP) -e '.[dev]'
	touch $@ $(VENV)/.run

# moto's S3 server for the tests, in its own venv so its dependencies stay out of the project's.
$(MOTO)/.created: $(VENV)/.created tests/moto-requirements.txt
	rm -rf $(MOTO)
	$(PYTHON) -m venv --without-pip $(MOTO)
	$(BIN)/python -m pip --python $(MOTO)/bin/python install --quiet --disable-pip-version-check \
		-r tests/moto-requirements.txt
	touch $@

run: $(VENV)/.run
	$(BIN)/mdr demo

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev
	$(BIN)/mypy

test: lint typecheck $(MOTO)/.created
	$(BIN)/pytest

unit: $(VENV)/.dev $(MOTO)/.created
	$(BIN)/pytest tests/unit

bench: $(VENV)/.dev
	$(PIP) -e '.[dev,bench]'
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/report.py

clean:
	rm -rf $(VENV) $(MOTO) .mypy_cache .ruff_cache .pytest_cache
