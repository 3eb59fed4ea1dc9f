# communiques: `make run` serves the embedded corpus, `make test` runs the test suite.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
INDEX ?= var/index
MODEL ?= var/model.pkl
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup run index model test lint clean browser nginx reliability replicas

setup: $(VENV)/.installed node_modules/.installed

# The State design system (DSFR) and axe-core, pinned in package-lock.json; their install
# scripts are not run (the DSFR's only checks for a project configuration file).
node_modules/.installed: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund
	touch $@

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench,cluster]'
	touch $@

index: setup
	$(BIN)/communiques ingest corpus --index $(INDEX) --prune --quiet || [ $$? -eq 1 ]

model: setup index
	@if [ ! -f $(MODEL) ]; then $(BIN)/communiques train --corpus corpus --model $(MODEL); fi

run: model
	$(BIN)/communiques serve --index $(INDEX) --model $(MODEL) --host $(HOST) --port $(PORT)

# Debian's chromium (apt, as root, only when missing) + playwright in the venv: the browser tests.
browser: setup
	VENV=$(VENV) bash scripts/install-browser.sh

# Debian's nginx (apt, as root, only when missing): the load balancer of the replica tests.
nginx:
	bash scripts/install-nginx.sh

lint: setup
	$(BIN)/ruff check .

test: setup browser nginx
	$(BIN)/ruff check .
	$(BIN)/pytest -q -n 2 --dist loadfile --durations=15

# The long reliability runs (about 16 minutes): 20 kill -9 during ingests, 2 minutes of
# 50 requests/s while ingesting, 60 s of API writes and reads with ingests into the same index,
# the rate-limit and poisoning attempts; their tables go in bench/RESULTS.md (## Reliability).
reliability: setup
	$(PY) -m bench.crash --kills 20 --n 300
	$(PY) -m bench.load_while_ingest --seconds 120 --rate 50
	$(PY) -m bench.concurrent_writes --seconds 60
	$(PY) -m bench.rate_limit_attempt --seconds 150
	$(PY) -m bench.poisoning --posts 66 --big 200

# Three replicas behind nginx (deploy/) for 60 s of 100 requests/s while builds are published
# and rolled back every 10 s, one replica restarted halfway; then the same on two builds of
# 10,000 documents (about 10 minutes in all, most of it indexing them). Tables in
# bench/RESULTS.md (## Replicas behind nginx).
replicas: setup nginx
	$(PY) -m bench.replicas --replicas 3 --seconds 60 --rate 100 --publish-every 10 --restart
	$(PY) -m bench.replicas --replicas 3 --seconds 60 --rate 100 --publish-every 10 --docs 10000

clean:
	rm -rf var .pytest_cache node_modules
