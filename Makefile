# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501

.PHONY: run test check format demo demo-shell bench clean

$(VENV)/.runtime: requirements.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	touch $@

# Switchboard itself, editable (pyproject.toml): `$(VENV)/bin/switchboard` runs this checkout
# from any folder. No network: the dependencies and setuptools come from requirements.txt.
$(VENV)/.installed: $(VENV)/.runtime pyproject.toml
	$(PY) -m pip install --quiet --no-index --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt constraints.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $@

# The OpenID Provider the single sign-on tests start (npm's oidc-provider, exactly as its lock
# file pins it), run by the machine's Node.js.
OIDC := tests/fixtures/oidc
$(OIDC)/node_modules/.package-lock.json: $(OIDC)/package-lock.json
	npm ci --prefix $(OIDC) --no-audit --no-fund --loglevel=error

## run: install, migrate and start the console at http://localhost:$(PORT)
run: $(VENV)/.installed
	$(VENV)/bin/switchboard db upgrade
	$(PY) -m streamlit run serve.py --server.port $(PORT)

## test: the whole suite, fastest tier first (tests/conftest.py), with its 25 slowest tests
test: $(VENV)/.dev $(VENV)/.installed $(OIDC)/node_modules/.package-lock.json
	$(PY) -m pytest --durations=25 $(PYTEST_ARGS)

## check: the first tier only: no browser, no PostgreSQL, nothing marked slow
check: $(VENV)/.dev $(VENV)/.installed
	$(PY) -m pytest -m "not e2e and not postgres and not slow" --durations=10 $(PYTEST_ARGS)

## format: lay the code out as the suite expects (ruff format), then apply ruff's safe fixes
format: $(VENV)/.dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## demo: the local 8x8 simulator, sample connections, and the console pointed at it
demo: $(VENV)/.installed
	PY=$(PY) bash scripts/demo.sh

## demo-shell: a shell whose `switchboard` commands use the demo's data (give it the demo's SIM_PORT, DEMO_DATA, DEMO_KEYRING)
demo-shell: $(VENV)/.installed
	PY=$(PY) bash scripts/demo.sh --shell

## bench: every benchmark; each prints "RESULT <figure>: <value> (goal ...: met|NOT met)" lines
bench: $(VENV)/.dev $(VENV)/.installed
	$(PY) -m bench.bulk_check
	$(PY) -m bench.connections_page
	$(PY) -m bench.cold_start
	$(PY) -m bench.demo_start
	$(PY) -m bench.schedule
	$(PY) -m bench.instances
	$(PY) -m bench.history
	$(PY) -m bench.alert_day
	$(PY) -m bench.soak

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
