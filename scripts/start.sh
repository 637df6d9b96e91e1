#!/usr/bin/env bash
# `npm start`: sets up a fresh Debian machine for a one-node fleet (npm dependencies, a Docker
# engine, the local busybox image for the tour) and runs the agent in the foreground.
# Arguments go to `shoal agent`, e.g. `npm start -- --name pi-1 --labels zone=garage`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh
bash scripts/ensure-docker.sh
bash scripts/test-image.sh
exec ./bin/shoal agent --pretty "$@"
