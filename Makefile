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
.PHONY: help venv run init-db test unit lint lint-python lint-infra test-integration test-container bench soak lock clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# The stamp is newer than both lock files only after a successful install,
# so editing a lock file reinstalls and nothing else does.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed ## create .venv and install the pinned dependencies

init-db: venv ## create the collection's indexes (idempotent)
	$(BIN)/flask --app service init-db

run: venv ## serve the API on 127.0.0.1:8000 (MONGODB_URI defaults to memory://)
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

test-container: venv ## build the image and run it as compose does: init-db, black-box suite, image checks
	scripts/test-container.sh

lock: ## regenerate the hashed lock files from requirements*.in
	test -x $(BIN)/pip-compile || $(BIN)/python -m pip install --quiet pip-tools==7.6.2
	PIP_FIND_LINKS= $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-find-links -o requirements.txt requirements.in
	PIP_FIND_LINKS= $(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-find-links -o requirements-dev.txt requirements-dev.in

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .tools .cache .pytest_cache .coverage htmlcov .hypothesis
