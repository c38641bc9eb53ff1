#!/usr/bin/env bash
# Set up a development environment: Python venv with pinned dependencies, the web app's
# npm packages, and (with --system) the Debian packages the tests need.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
if [[ "${1:-}" == "--system" ]]; then
    [[ -x /usr/bin/chromium ]] || need_apt+=(chromium)
    [[ -x /usr/bin/docker-compose ]] || need_apt+=(docker-compose)
    command -v redis-server >/dev/null || need_apt+=(redis-server)
fi
command -v npm >/dev/null || need_apt+=(nodejs npm)
if ((${#need_apt[@]})); then
    echo "==> installing system packages: ${need_apt[*]}"
    SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [[ ! -x .venv/bin/python ]]; then
    echo "==> creating .venv with $($PY --version)"
    "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml requirements.lock | sha256sum | cut -c1-16)
if [[ ! -f $stamp ]]; then
    echo "==> installing Python dependencies (pinned by requirements.lock)"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -c requirements.lock -e ".[dev]"
    rm -f .venv/.installed-*; touch "$stamp"
fi
if [[ ! -f frontend/node_modules/.package-lock.json ]] || \
   [[ frontend/package-lock.json -nt frontend/node_modules/.package-lock.json ]]; then
    echo "==> installing web app packages (npm ci)"
    npm ci --prefix frontend --no-audit --no-fund --loglevel=error
fi
