# Two commands do everything on a fresh machine: `make demo` and `make test`.
# uv is bootstrapped with pip when it is missing; the virtual environment is made from uv.lock.
PYTHON ?= python3
UV := $(PYTHON) -m uv
VENV_STAMP := .venv/.synced-$(shell cat uv.lock pyproject.toml | cksum | cut -d' ' -f1)
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: demo test test-all bench bench-full bench-day lint clean install

install: $(VENV_STAMP)

$(VENV_STAMP): pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv \
		|| $(PYTHON) -m pip install --quiet --user --break-system-packages uv
	$(UV) sync --frozen --all-groups
	@rm -f .venv/.synced-*; touch $@

demo: install
	$(UV) run --frozen tallyproof demo

test: install
	$(UV) run --frozen ruff check .
	$(UV) run --frozen pytest -q

test-all: install
	$(UV) run --frozen pytest -q -m ""

bench: install
	$(UV) run --frozen python bench/run.py

bench-full: install
	$(UV) run --frozen python bench/run.py --deltas 10000000 --customers 100000 --months 12

# The one-day run again, on the history `bench/run.py --workdir $(WORKDIR)` kept (see docs/performance.md).
bench-day: install
	$(UV) run --frozen python bench/day.py --workdir $(WORKDIR) --runs $(or $(RUNS),3)

lint: install
	$(UV) run --frozen ruff check .

clean:
	rm -rf .venv data/inbox data/output data/keys data/warehouse.duckdb* data/snapshots
