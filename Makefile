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

.PHONY: install demo test lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/segedge data synth $(DEMO_DIR)/data --images $(DEMO_IMAGES) --size $(DEMO_SIZE) --overwrite
	$(BIN)/segedge data check $(DEMO_DIR)/data

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(DEMO_DIR) .pytest_cache .ruff_cache
