#!/usr/bin/env bash
# `npm test`: prepares everything the tests need on a fresh Debian machine (dependencies, the
# test-only Debian packages, a Docker engine, the local test image), then checks types and style
# (shellcheck included) and runs every test:
# unit and simulation tests first, then end-to-end tests against the real engine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
bash scripts/ensure-test-tools.sh
bash scripts/ensure-docker.sh
bash scripts/test-image.sh
echo "== typecheck" && npx tsc --noEmit
# One command per line: under `set -e` a failure inside an && list (other than its last command)
# does not stop the script, and a lint error would pass unseen.
echo "== lint"
npx biome check .
shellcheck -s sh install.sh
shellcheck scripts/*.sh test/e2e/*.sh
echo "== unit tests" && npm run -s test:unit
echo "== end-to-end tests" && npm run -s test:e2e
