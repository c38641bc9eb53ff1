#!/usr/bin/env bash
# Set up, build the bundled city (first run: about a minute) and serve the web app.
# Usage: scripts/run.sh [--city porto-alegre|oslo] [--port 8000] [--host 127.0.0.1]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/correspondance serve "$@"
