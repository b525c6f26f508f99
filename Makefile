# Two commands do all the setup on a fresh machine: `make run` and `make test`.
# Everything else here is a building block of those two or of CI.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export MONGODB_URI ?= memory://
HOST   ?= 127.0.0.1
PORT   ?= 8000

include bench/bench.mk

.DEFAULT_GOAL := help
.PHONY: help venv run init-db test unit lint lint-python test-integration test-sharded test-container test-k8s test-install bench soak lock clean

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# Installs replay the hashed locks (scripts/install-lock.sh): no version is chosen at
# install time. Each stamp is newer than its lock only after a successful install, so
# editing a lock reinstalls and nothing else does. Serving needs the runtime lock only;
# everything else needs the dev lock, a superset of it.
$(VENV)/.runtime: requirements.txt
	PYTHON=$(PYTHON) scripts/install-lock.sh $(VENV) requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	PYTHON=$(PYTHON) scripts/install-lock.sh $(VENV) requirements-dev.txt
	touch $@

venv: $(VENV)/.dev ## create .venv and install the dev lock (the runtime lock and test tools)

init-db: $(VENV)/.runtime ## create the collection's indexes (idempotent)
	$(BIN)/flask --app service init-db

run: $(VENV)/.runtime ## serve the API on 127.0.0.1:8000 (MONGODB_URI defaults to memory://)
	$(BIN)/flask --app service init-db
	BIND=$(HOST):$(PORT) $(BIN)/gunicorn -c gunicorn.conf.py 'service:create_app()'

lint-python: venv
	$(BIN)/flake8 service tests bench gunicorn.conf.py

test: venv lint-python unit ## lint the Python code and run the unit tests (branch coverage >= 95%)

unit: venv
	$(BIN)/pytest tests/unit

lint: lint-python ## every linter and validator (Python, container, manifests, workflows, scripts)
	$(BIN)/python scripts/lint.py

test-integration: venv ## the integration suite over HTTP against a real server (FerretDB unless MONGODB_URI is set)
	scripts/integration.sh

# Three PostgreSQL servers on 2 cores: the suite takes longer than on one, so its bound is wider.
test-sharded: venv ## the integration suite and the sharding gates on sharded DocumentDB (Citus, 2 workers)
	FERRETDB_SHARDED=1 INTEGRATION_TIMEOUT_S=2700 scripts/integration.sh

test-container: venv ## build the image and run it as compose does: init-db, black-box suite, image checks
	scripts/test-container.sh

test-k8s: venv ## the deployment on Kubernetes, disturbed: a single-node cluster built here, or kubectl's (K8S_IMAGE set)
	scripts/test-k8s.sh

# Every hashed lock, each compiled from the .in file beside it; the runtime lock first,
# since the dev lock is constrained by it.
LOCKS := requirements.txt requirements-dev.txt bench/requirements.txt \
         scripts/locks/pip-tools.txt scripts/locks/checkov.txt scripts/locks/podman-compose.txt
PIP_TOOLS := .tools/pip-tools-venv

lock: ## regenerate every hashed lock file from its .in file
	PYTHON=$(PYTHON) scripts/install-lock.sh $(PIP_TOOLS) scripts/locks/pip-tools.txt
	for lock in $(LOCKS); do \
	  PIP_FIND_LINKS= $(PIP_TOOLS)/bin/pip-compile --quiet --generate-hashes --allow-unsafe \
	    --strip-extras --no-emit-find-links -o $$lock $${lock%.txt}.in || exit 1; \
	done

test-install: ## replay each lock into a fresh venv with the oldest supported pip; fail if anything differs
	PYTHON=$(PYTHON) scripts/test-install.sh

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .tools .cache .pytest_cache .coverage htmlcov .hypothesis
