#!/usr/bin/env bash
# Install the interop tests' npm packages (pinned in package-lock.json) into
# tests/interop/node_modules, then stamp it with the lock file's digest so the tests reinstall
# only when the lock changes. Called by tests/interop/conftest.py; safe to run by hand.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
sha256sum package-lock.json | cut -d' ' -f1 > node_modules/.paybridge-lock.sha256
