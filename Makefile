# Set-up and everyday commands. `make run` and `make test` are all a fresh machine needs.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup browser run test lint index train eval bench bench-ingest bench-scale bench-cold fuzz clean

setup: $(STAMP)

# Re-install only when the project's dependency list changes; a second `make setup` is a no-op.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: anything else could pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# Export the embedding model to ONNX (int8 and fp32) once, from the packaged weights: no download.
	$(BIN)/python -m assistant.index.onnx_embedder
	touch $(STAMP)

index: setup
	$(BIN)/assistant index

# The chat page on http://127.0.0.1:8501 (it builds the index first when there is none).
run: setup
	$(BIN)/assistant ui

# Debian's Chromium for the browser test (never `playwright install`: no downloads from there).
browser:
	@test -x /usr/bin/chromium || apt-get install -y chromium || (apt-get update && apt-get install -y chromium)

test: setup browser
	$(BIN)/ruff check assistant ui tests eval
	$(BIN)/ruff format --check assistant ui tests eval
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

# Fit the answer scorer on the dev gold (assistant/answer/weights.json, committed) and cross-validate it
# (leave one document out: eval/reports/cv/cv.md). Deterministic: the same gold and index give the same file.
train: setup
	$(BIN)/assistant index
	$(BIN)/assistant train --gold eval/gold/dev.jsonl --cv eval/reports/cv

# The evaluator's run: every system on the dev gold plus the scorer's cross-validation; report.md, report.json,
# cv.md and plots in eval/reports/latest.
eval: setup
	$(BIN)/assistant eval --gold eval/gold/dev.jsonl --out eval/reports/latest --cv

bench: setup browser
	$(BIN)/python eval/bench_index.py
	$(BIN)/python eval/bench_answer.py
	@test -f index/CURRENT || $(BIN)/assistant index
	$(BIN)/python eval/bench_ui.py

# The robustness campaign at length: thousands of fuzzed questions, filters, histories, files, uploads and LLM
# replies (hypothesis profile "fuzz"); prints inputs tried / failures / p50 / p99 latency per target and writes
# them to eval/reports/fuzz.json. `make test` runs the same properties with a small example count.
fuzz: setup
	mkdir -p eval/reports
	HYPOTHESIS_PROFILE=fuzz FUZZ_STATS=eval/reports/fuzz.json $(BIN)/python -m pytest -q -p no:cacheprovider \
		tests/robustness/test_fuzz.py

# Ingestion time and peak memory at 1, 10 and 50 MB (seconds per MB; linear in file size).
bench-ingest: setup
	$(BIN)/python eval/bench_ingest.py

# Synthetic 10^4 / 10^5 / 10^6-chunk collections (long: about an hour, several GB of disk); not part of `make test`.
bench-scale: setup
	$(BIN)/python eval/bench_scale.py --sizes 10000,100000,1000000 --out eval/reports/scale

# `assistant ask` from process start to printed answer, median of 5 (needs an index: `make index`).
bench-cold: setup
	$(BIN)/python eval/bench_cold.py --runs 5 --backends onnx-int8

clean:
	rm -rf $(VENV) index/builds index/CURRENT
