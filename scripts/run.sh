#!/usr/bin/env bash
# Set up, build the bundled city (first run: about a minute) and serve the web app.
# Usage: scripts/run.sh [--city porto-alegre|oslo] [--port 8000] [--host 127.0.0.1]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The scripted live-trip demo (/?demo=1) is on here, never in production deployments; the
# simulated car-share is frozen at a moment when the demo trip has cars (the bundled
# timetables are dated anyway). Override either in the environment.
export CORRESPONDANCE_DEMO="${CORRESPONDANCE_DEMO:-true}"
export CORRESPONDANCE_SIMULATED_FEEDS_AT="${CORRESPONDANCE_SIMULATED_FEEDS_AT:-1795445400}"
echo "Live-trip demo: open /?demo=1 (simulated contributors; CORRESPONDANCE_DEMO=false to turn off)"
exec .venv/bin/correspondance serve "$@"
