# The two commands: `make demo` and `make test`. Both set everything up on a fresh machine.
# The venv's interpreter: the distribution's python3 when it is 3.11+ (Debian's and the official
# images' builds are compiled with PGO and LTO), else the python3 on PATH. A from-source build
# without those optimizations (pyenv's default) runs the page's Python 3x slower and builds pages
# ~20% slower (docs/benchmarks.md). Override with `make PYTHON=/path/to/python3 test`; an existing
# .venv keeps its interpreter (`make clean` first).
PYTHON ?= $(shell /usr/bin/python3 -c 'import sys, ensurepip; sys.exit(sys.version_info < (3, 11))' \
	>/dev/null 2>&1 && echo /usr/bin/python3 || echo python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean redis-server chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/shelfrank demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

test: $(STAMP) lint redis-server chromium
	$(BIN)/pytest -q

# The service's replica tests start a real redis-server; install it when missing (Debian, root).
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server \
		>/dev/null 2>&1; } || echo "redis-server is not installed: the Redis replica tests will be skipped"

# The storefront's browser tests (tests/e2e) drive Debian's chromium, never a downloaded browser.
chromium:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
		>/dev/null 2>&1; } || echo "chromium is not installed: the browser tests (tests/e2e) will be skipped"

# Small scale only (minutes); standard scale: add --scales small standard (see docs/benchmarks.md).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_simulate_ingest.py --scales small --repeat 3
	$(BIN)/python benchmarks/bench_diversify.py
	$(BIN)/python benchmarks/bench_train.py --scales small

clean:
	rm -rf $(VENV) shelfrank-data .pytest_cache
