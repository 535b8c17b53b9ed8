# healthscore — the two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test chaos lint bench lock clean

# The runtime is the root distribution (requirements.lock pins it for deployments); the demo
# adds the report extra and the development tooling, the sandbox/ distribution
# (healthscore-sandbox: the emulators, `healthscore demo`, `healthscore sandbox serve`).
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.demo: $(BIN)/python requirements-demo.lock pyproject.toml sandbox/pyproject.toml
	$(BIN)/pip install --quiet -r requirements-demo.lock
	$(BIN)/pip install --quiet --no-deps -e . -e ./sandbox
	touch $@

$(VENV)/.dev: $(VENV)/.demo requirements-dev.lock
	$(BIN)/pip install --quiet -r requirements-dev.lock
	touch $@

demo: $(VENV)/.demo  ## start the sandbox, seed 500 accounts, run two cycles
	$(BIN)/healthscore demo --accounts $(or $(ACCOUNTS),500)

test: $(VENV)/.dev  ## run the test suite (needs REDIS_URL or redis-server on PATH)
	@if [ -z "$$REDIS_URL" ] && ! command -v redis-server >/dev/null 2>&1; then \
		echo "The tests need Redis: set REDIS_URL=redis://host:port/0, or install it" \
		     "(Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis)."; \
		exit 1; fi
	$(BIN)/pytest -q

chaos: $(VENV)/.dev  ## kill real workers and Redis under vendor faults (needs redis-server, PostgreSQL)
	$(BIN)/python -m sandbox.chaos

lint: $(VENV)/.dev  ## ruff, ruff format and the import layers (import-linter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench: $(VENV)/.dev
	@for b in benchmarks/bench_*.py; do $(BIN)/python $$b; done

# the demo and dev locks pin the third-party packages of the runtime, its extras and the
# sandbox distribution; the two local packages themselves are installed editable
LOCK := $(BIN)/uv pip compile --python-version 3.11 -q --custom-compile-command "make lock"
LOCAL := --no-emit-package healthscore --no-emit-package healthscore-sandbox

lock: $(BIN)/python  ## re-pin dependencies after editing pyproject.toml or sandbox/pyproject.toml
	$(BIN)/pip install --quiet uv
	$(LOCK) pyproject.toml -o requirements.lock
	printf -- '-e .[report,fit]\n-e ./sandbox\n' | $(LOCK) $(LOCAL) - -o requirements-demo.lock
	printf -- '-e .[report,fit,dev]\n-e ./sandbox\n' | $(LOCK) $(LOCAL) - -o requirements-dev.lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache healthscore.db*
