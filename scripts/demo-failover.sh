#!/usr/bin/env bash
# The failover demo (root): a 3-node lab loses its leader's host, a worker's host and a node to a
# partition, and the timeline shows how fast its web service runs and answers elsewhere.
#   bash scripts/demo-failover.sh [--keep]    --keep leaves a lab it brought up running
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh >/dev/null
bash scripts/ensure-docker.sh >/dev/null
bash scripts/test-image.sh >/dev/null
exec npx tsx scripts/demo-failover.ts "$@"
