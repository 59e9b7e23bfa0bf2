# Two commands a newcomer needs: `make demo` and `make test`.
# Each creates .venv (and installs segedge with all extras) when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.segedge-installed

# Demo knobs: small enough for a 2-core CPU in a few minutes.
DEMO_DIR    ?= demo
DEMO_IMAGES ?= 240
DEMO_SIZE   ?= 96
DEMO_EPOCHS ?= 8

.PHONY: install demo test lint wheel arm64-check clean docs docs-serve

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

# data -> train -> export -> bench, on a generated VOC-layout dataset (scripts/demo.sh; a rerun
# replaces only the demo's own outputs and refreshes the figures).
demo: $(STAMP)
	SEGEDGE=$(BIN)/segedge DEMO_DIR=$(DEMO_DIR) DEMO_IMAGES=$(DEMO_IMAGES) DEMO_SIZE=$(DEMO_SIZE) \
		DEMO_EPOCHS=$(DEMO_EPOCHS) scripts/demo.sh
	@echo "segedge is installed in $(VENV): 'source $(VENV)/bin/activate' puts it on your PATH for the README's examples"

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# The documentation site (mkdocs.yml, docs/) into build/site, --strict: a broken link or a warning fails.
# Needs only the core and the docs extra: installs them into .venv when missing (works from a clean clone).
DOCS_CHECK := import typer, rich, numpy, PIL, mkdocs, material, mkdocstrings_handlers.python

docs:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "$(DOCS_CHECK)" 2>/dev/null || $(BIN)/python -m pip install --quiet -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

docs-serve:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "$(DOCS_CHECK)" 2>/dev/null || $(BIN)/python -m pip install --quiet -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs serve

# dist/segedge-VERSION-py3-none-any.whl: what a Raspberry Pi installs (docs/guide/pi.md).
wheel: $(STAMP)
	rm -f dist/segedge-*.whl
	$(BIN)/python -m pip wheel --no-deps --wheel-dir dist .
	@ls dist/segedge-*.whl

# Installs the wheel in an emulated arm64 Bookworm root (a Pi 4's Cortex-A72 under qemu, as root)
# and checks doctor, predict and bench's gate there against x86 (scripts/arm64_check.sh).
# Exit 77: this machine cannot run it (the one line says why).
arm64-check: $(STAMP)
	SEGEDGE_BIN=$(abspath $(BIN)) scripts/arm64_check.sh

clean:
	rm -rf $(DEMO_DIR) .pytest_cache .ruff_cache build
