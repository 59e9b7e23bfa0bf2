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

.PHONY: install demo test lint wheel arm64-check clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

# data -> train -> export -> bench, on a generated VOC-layout dataset.
demo: $(STAMP)
	$(BIN)/segedge data synth $(DEMO_DIR)/data --images $(DEMO_IMAGES) --size $(DEMO_SIZE) --overwrite
	$(BIN)/segedge data check $(DEMO_DIR)/data
	$(BIN)/segedge train $(DEMO_DIR)/data --out $(DEMO_DIR)/run --image-size $(DEMO_SIZE) \
		--epochs $(DEMO_EPOCHS) --batch-size 16 --overwrite
	$(BIN)/segedge export $(DEMO_DIR)/run --out $(DEMO_DIR)/bundle --format all --calib-images 100 --eval-images 60 --overwrite
	$(BIN)/segedge bench $(DEMO_DIR)/bundle --out $(DEMO_DIR)/report --runs 50 --warmup 5
	@echo "report: $(DEMO_DIR)/report/report.md (and report.html, latency_vs_miou.png)"

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# dist/segedge-VERSION-py3-none-any.whl: what a Raspberry Pi installs (README, "On a Raspberry Pi").
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
