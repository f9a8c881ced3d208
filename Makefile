# Set-up on a fresh machine: `make demo` and `make test` do everything.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck bench bench-peers clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

demo: $(VENV)/.installed
	MPLBACKEND=Agg $(BIN)/python examples/demo.py

test: $(VENV)/.installed-test
	MPLBACKEND=Agg $(BIN)/python -m pytest -q
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/mypy

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks examples

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

# Timing scripts (minutes at 1M units; not part of the tests). Results: benchmarks/RESULTS.md.
bench: $(VENV)/.installed
	cd benchmarks && for s in twfe att_gt sun_abraham imputation_did2s wild_bootstrap; do ../$(BIN)/python $$s.py; done

# The Python peers and didx in one run of the shared harness (needs ../shared and network access to PyPI).
PEERS ?= ../peers-venv
bench-peers: $(VENV)/.installed
	test -x $(PEERS)/bin/python || ($(PY) -m venv $(PEERS) && $(PEERS)/bin/pip install diff-diff==3.13.0 \
	  pyfixest==0.60.0 csdid==0.4.3 differences==0.3.0 moderndid==0.2.0 did-imputation==0.1.0 linearmodels==7.1 \
	  pyarrow tabulate)
	$(PEERS)/bin/pip install --quiet -e .
	BENCH_EXTRA_TASKS=benchmarks/peer_tasks.py $(PEERS)/bin/python ../shared/bench/bench_peers.py run \
	  --data-dir ../panels --out benchmarks/peers.jsonl --sizes 100000,1000000 \
	  --tasks didx.twfe,pyfixest.twfe,didx.cs,diff-diff.cs,csdid.cs,didx.cs_boot,diff-diff.cs_boot,didx.sa,diff-diff.sa,pyfixest.sa,didx.bjs,diff-diff.bjs,didx.gardner,diff-diff.gardner,pyfixest.gardner
	$(PEERS)/bin/python ../shared/bench/bench_peers.py render benchmarks/peers.jsonl

clean:
	rm -rf $(VENV) out build src/*.egg-info
