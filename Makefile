# healthscore — the two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint bench lock clean

$(VENV)/.runtime: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.lock
	$(BIN)/pip install --quiet -r requirements-dev.lock
	touch $@

demo: $(VENV)/.runtime  ## start the sandbox, seed 500 accounts, run two cycles
	$(BIN)/healthscore demo --accounts $(or $(ACCOUNTS),500)

test: $(VENV)/.dev  ## run the test suite (needs REDIS_URL or redis-server on PATH)
	@if [ -z "$$REDIS_URL" ] && ! command -v redis-server >/dev/null 2>&1; then \
		echo "The tests need Redis: set REDIS_URL=redis://host:port/0, or install it" \
		     "(Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis)."; \
		exit 1; fi
	$(BIN)/pytest -q

lint: $(VENV)/.dev  ## ruff, ruff format and the import layers (import-linter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench: $(VENV)/.dev
	@for b in benchmarks/bench_*.py; do $(BIN)/python $$b; done

lock:  ## re-pin dependencies after editing pyproject.toml
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 -q -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -q \
		-o requirements-dev.lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache healthscore.db*
