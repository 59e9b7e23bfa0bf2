#!/usr/bin/env bash
# The demo pipeline (`make demo`): data -> train -> export -> bench on a generated VOC-layout dataset.
# Every step replaces only the demo's own outputs (--overwrite), so a second run works and refreshes
# the figures for this machine. The knobs are environment variables; `make demo` passes its own, and
# tests/test_demo_rerun.py runs this script twice with tiny ones.
set -euo pipefail
SEGEDGE="${SEGEDGE:-segedge}"
DEMO_DIR="${DEMO_DIR:-demo}"
DEMO_IMAGES="${DEMO_IMAGES:-240}"
DEMO_SIZE="${DEMO_SIZE:-96}"
DEMO_EPOCHS="${DEMO_EPOCHS:-8}"
DEMO_BATCH="${DEMO_BATCH:-16}"
DEMO_CALIB="${DEMO_CALIB:-100}"
DEMO_EVAL="${DEMO_EVAL:-60}"
DEMO_FORMATS="${DEMO_FORMATS:-all}"
DEMO_RUNS="${DEMO_RUNS:-50}"
DEMO_WARMUP="${DEMO_WARMUP:-5}"

"$SEGEDGE" data synth "$DEMO_DIR/data" --images "$DEMO_IMAGES" --size "$DEMO_SIZE" --overwrite
"$SEGEDGE" data check "$DEMO_DIR/data"
"$SEGEDGE" train "$DEMO_DIR/data" --out "$DEMO_DIR/run" --image-size "$DEMO_SIZE" \
    --epochs "$DEMO_EPOCHS" --batch-size "$DEMO_BATCH" --overwrite
"$SEGEDGE" export "$DEMO_DIR/run" --out "$DEMO_DIR/bundle" --format "$DEMO_FORMATS" \
    --calib-images "$DEMO_CALIB" --eval-images "$DEMO_EVAL" --overwrite
"$SEGEDGE" bench "$DEMO_DIR/bundle" --out "$DEMO_DIR/report" --runs "$DEMO_RUNS" --warmup "$DEMO_WARMUP" --overwrite
echo "report: $DEMO_DIR/report/report.md (and report.html, latency_vs_miou.png)"
