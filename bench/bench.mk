# Performance targets, included by the Makefile (which defines VENV and BIN).
# Every one talks to 127.0.0.1 only and stops by itself; see bench/README.md.
# MONGODB_URI=mongodb://... benchmarks that server; anything else starts a throwaway FerretDB.

K6_VERSION      := v1.8.1
K6              := .tools/bin/k6
BENCH_VENV      := .tools/bench-venv
BENCH_RESULTS   ?= bench/results
BENCH_REPORT    := BENCH_RESULTS=$(BENCH_RESULTS) $(BENCH_VENV)/bin/python -m bench.report

.PHONY: bench soak bench-overhead bench-tune bench-slow bench-edge bench-tax bench-report

# k6 is the load generator: built from its pinned module with the installed Go.
$(K6):
	GOTOOLCHAIN=local GOBIN=$(abspath .tools/bin) go install go.k6.io/k6@$(K6_VERSION)

# matplotlib for the chart lives apart from .venv: `make test` never installs it.
$(BENCH_VENV)/.installed: bench/requirements.txt
	PYTHON=$(PYTHON) scripts/install-lock.sh $(BENCH_VENV) bench/requirements.txt
	touch $@

bench: venv $(K6) $(BENCH_VENV)/.installed ## latency vs volume (BENCH_VOLUMES, default 10k,100k,1M,10M) under open-loop load
	BENCH_RESULTS=$(BENCH_RESULTS) $(BIN)/python -m bench.run
	$(BENCH_REPORT)

soak: venv $(K6) $(BENCH_VENV)/.installed ## constant load for SOAK_SECONDS (default 600): p99 drift and worker RSS growth
	BENCH_RESULTS=$(BENCH_RESULTS) $(BIN)/python -m bench.soak
	$(BENCH_REPORT)

bench-overhead: venv $(BENCH_VENV)/.installed ## CPU per request of the service alone (stub store, no database)
	BENCH_RESULTS=$(BENCH_RESULTS) $(BIN)/python -m bench.overhead
	$(BENCH_REPORT)

bench-tune: venv $(K6) $(BENCH_VENV)/.installed ## capacity and p99 per gunicorn worker class, worker count and pool size
	BENCH_RESULTS=$(BENCH_RESULTS) $(BIN)/python -m bench.tune
	$(BENCH_REPORT)

bench-slow: venv ## 1,024 slow, silent or non-reading connections vs 50 req/s of polite traffic, through nginx + gunicorn
	BENCH_RESULTS=$(BENCH_RESULTS) $(BIN)/python -m bench.slow

bench-edge: venv $(BENCH_VENV)/.installed ## what nginx in front costs a read: the same GETs straight to gunicorn and through nginx, interleaved
	BENCH_RESULTS=$(BENCH_RESULTS) $(BIN)/python -m bench.edge
	$(BENCH_REPORT)

bench-tax: venv $(BENCH_VENV)/.installed ## what the service adds to each read: the same reads through HTTP and through pymongo, interleaved
	BENCH_RESULTS=$(BENCH_RESULTS) $(BIN)/python -m bench.tax
	$(BENCH_REPORT)

bench-report: $(BENCH_VENV)/.installed ## rewrite RESULTS.md and latency.png from the JSON results
	$(BENCH_REPORT)
