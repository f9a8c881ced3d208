# Set-up on a fresh machine: `make demo` and `make test` do everything.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck bench bench-peers clean check-report

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

# The mpdta workflow report (examples/report_mpdta.py) opened in headless Chromium: installs Debian's chromium if
# missing (apt-get; needs root or sudo), saves out/report_mpdta.png and fails on any console message.
CHROMIUM ?= chromium
REPORT_DEPS ?= $(VENV)/.installed
REPORT_HEIGHT ?= 3000
check-report: $(REPORT_DEPS)
	@command -v $(CHROMIUM) >/dev/null 2>&1 || { \
	  echo "check-report: $(CHROMIUM) not found; installing Debian's chromium with apt-get"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; \
	  else echo "check-report: FAILED: chromium is missing and this user can neither install packages (not root) nor use sudo. Install it (apt-get install chromium) and rerun."; exit 1; fi; \
	  ($$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium) \
	  || { echo "check-report: FAILED: apt-get could not install chromium (see above). Install it and rerun."; exit 1; }; }
	mkdir -p out
	PYTHONPATH=src MPLBACKEND=Agg $(BIN)/python examples/report_mpdta.py out/report_mpdta.html
	@! grep -Eo '(src|href)="(https?:)?//[^"]*"' out/report_mpdta.html || { echo "check-report: FAILED: the report links outside itself"; exit 1; }
	timeout 180 $(CHROMIUM) --headless --no-sandbox --disable-gpu --hide-scrollbars --host-resolver-rules="MAP * ~NOTFOUND" \
	  --window-size=1280,$(REPORT_HEIGHT) --screenshot=$(CURDIR)/out/report_mpdta.png --enable-logging=stderr --v=0 \
	  file://$(CURDIR)/out/report_mpdta.html 2> out/report_mpdta.chromium.log
	@! grep -E "CONSOLE|Uncaught" out/report_mpdta.chromium.log || { echo "check-report: FAILED: console messages above (out/report_mpdta.chromium.log)"; exit 1; }
	@test -s out/report_mpdta.png || { echo "check-report: FAILED: no screenshot written"; exit 1; }
	@echo "check-report: OK: out/report_mpdta.png saved, no console errors"

clean:
	rm -rf $(VENV) out build src/*.egg-info
