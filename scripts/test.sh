#!/usr/bin/env bash
# Set up everything the suite needs (venv, npm packages, Chromium, docker-compose,
# redis-server), make sure Redis answers on 127.0.0.1:6379, then run ruff, mypy and
# pytest with coverage. Benchmarks are not part of this: see benchmarks/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --system

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "==> starting redis-server on 127.0.0.1:6379"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --dir "${TMPDIR:-/tmp}" --logfile "${TMPDIR:-/tmp}/correspondance-redis.log"
    for _ in $(seq 50); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> mypy (strict)"
.venv/bin/mypy
echo "==> pytest"
.venv/bin/python -m pytest -m "not benchmark" --cov --cov-report=term:skip-covered \
    --cov-fail-under=80 "$@"
