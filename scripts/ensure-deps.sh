#!/usr/bin/env bash
# Installs the npm dependencies from the lockfile when they are missing or older than it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "shoal: installing dependencies (npm ci)" >&2
  npm ci --no-audit --no-fund
fi
# The arm64 release binary is tested under qemu-user, with Debian's arm64 C runtime for it.
if ! command -v qemu-aarch64 >/dev/null || [ ! -e /usr/aarch64-linux-gnu/lib/libgcc_s.so.1 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "shoal: installing qemu-user and the arm64 C runtime (apt-get)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      qemu-user libc6-arm64-cross libgcc-s1-arm64-cross >/dev/null
  else
    echo "shoal: the arm64 binary's test needs qemu-user, libc6-arm64-cross and libgcc-s1-arm64-cross (root installs them)" >&2
  fi
fi
# install.sh is checked with shellcheck (Debian's package).
if ! command -v shellcheck >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "shoal: installing shellcheck (apt-get)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q shellcheck >/dev/null
  else
    echo "shoal: the lint step needs shellcheck (root installs it)" >&2
  fi
fi
# install.sh is tested in a clean Debian root that debootstrap makes.
if ! command -v debootstrap >/dev/null && [ "$(id -u)" -eq 0 ]; then
  echo "shoal: installing debootstrap (apt-get)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
fi
