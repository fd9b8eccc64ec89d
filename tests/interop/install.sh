#!/usr/bin/env bash
# Install ArcBlock's signing packages (pinned in package-lock.json) into tests/interop/node_modules.
# Called by tests/interop/test_blocklet_interop.py when node_modules is missing; safe to run by hand.
set -euo pipefail
cd "$(dirname "$0")"
if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
else
  npm install --no-audit --no-fund --ignore-scripts --loglevel=error
fi
