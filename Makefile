# kfkit: two commands from a fresh clone.
#   make run    the training pipeline locally on the bundled penguins data, then a live prediction
#   make test   every test, with the servers they need started and stopped by the tests
# Both create the environments first (idempotent; only a changed lock file re-syncs).

SHELL := /bin/bash
UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
# Python 3.11 runs kfkit; 3.12 runs seldon-core 1.19 in its own serving environment.
PY311 ?= $(firstword $(wildcard /root/.pyenv/versions/3.11*/bin/python3.11) $(shell command -v python3.11))
PY312 ?= $(firstword $(wildcard /root/.pyenv/versions/3.12*/bin/python3.12) $(shell command -v python3.12))
export UV_PYTHON_DOWNLOADS := never
# Compile bytecode at install, as the component images do: uv does not by default, and where
# PYTHONDONTWRITEBYTECODE=1 is set (as on these machines) every task would otherwise compile
# TensorFlow's and Beam's thousands of modules from source on each import (measured here:
# `import tensorflow_data_validation` 12.6 s without .pyc files, 4.5 s with them).
export UV_COMPILE_BYTECODE := 1

.PHONY: setup run test test-fast test-cluster lint compile bench bench-lineage bench-serving bench-scale bench-scoring clean

setup: .venv/.synced serving/.venv/.synced

$(UV):
	@test -n "$(PY311)" || { echo "make: Python 3.11 not found (set PY311=...)"; exit 1; }
	$(PY311) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# The Makefile too: a checkout synced before bytecode compilation was added gets it once.
.venv/.synced: uv.lock pyproject.toml Makefile | $(UV)
	$(UV) sync --frozen --all-extras --python $(PY311)
	@touch $@

serving/.venv/.synced: serving/uv.lock serving/pyproject.toml Makefile | $(UV)
	@test -n "$(PY312)" || { echo "make: Python 3.12 not found for the serving env (set PY312=...)"; exit 1; }
	cd serving && ../$(UV) sync --frozen --python $(PY312)
	@touch $@

run: setup
	.venv/bin/kfkit demo --config configs/penguins.yaml

# The control plane of tests/cluster (tests/cluster/README.md) is built before any test, so that a
# failed build stops at once: once per machine (9 min cold with its Go modules on 2 idle cores, KFP's
# API server 3.5 min more; both several times that on a loaded machine), then cached.
test: setup
	.venv/bin/ruff check .
	bash tests/cluster/build.sh
	bash tests/cluster/build_kfp.sh
	.venv/bin/python -m pytest
	.venv/bin/python -m pytest -m cluster tests/cluster

test-fast: setup
	.venv/bin/python -m pytest -m "not slow"

# The tests against a real control plane (tests/cluster/README.md): builds it first (once; cached).
test-cluster: setup
	bash tests/cluster/build.sh
	bash tests/cluster/build_kfp.sh
	.venv/bin/python -m pytest -m cluster tests/cluster

lint: setup
	.venv/bin/ruff check .

compile: setup
	.venv/bin/kfkit compile

bench: setup
	.venv/bin/python benchmarks/pipeline_timing.py

bench-lineage: setup
	.venv/bin/python benchmarks/lineage_queries.py

# The pipeline on a generated loans table (cached under benchmarks/.data/) beside the Arrow-parse and
# TFDV floors: make bench-scale ROWS=1000000,10000000 ARGS="--param max_train_rows=500000"
ROWS ?= 1000000
bench-scale: setup
	.venv/bin/python benchmarks/scale.py --rows $(ROWS) $(ARGS)

# Batch scoring of a generated loans table with a logistic regression and a 100-tree random forest,
# beside each model's own predict_proba on the same in-memory rows: make bench-scoring ROWS=1000000
bench-scoring: setup
	.venv/bin/python benchmarks/scoring.py --rows $(ROWS) $(ARGS)

# MLServer's scikit-learn runtime in its own venv (benchmarks/mlserver/uv.lock), only for this benchmark.
# Python 3.11 like kfkit's env (3.12 works as well: the parallel-worker crash came from uvloop 0.22+,
# which benchmarks/mlserver/pyproject.toml pins below 0.22, not from the Python version).
benchmarks/mlserver/.venv/.synced: benchmarks/mlserver/uv.lock benchmarks/mlserver/pyproject.toml | $(UV)
	cd benchmarks/mlserver && ../../$(UV) sync --frozen --python $(PY311)
	@touch $@

bench-serving: setup benchmarks/mlserver/.venv/.synced
	.venv/bin/python benchmarks/serving_latency.py

clean:
	-.venv/bin/kfkit store stop
	rm -rf .kfkit
