#!/usr/bin/env bash
# Installs the Debian packages only the tests need (root): qemu-user and the arm64 C runtime run
# the arm64 release binary, shellcheck checks install.sh, debootstrap makes the clean root that
# install.sh is tested in, systemd-analyze checks the unit it writes. `npm start` needs none of
# them. tcpdump captures the lab bridge to show what a fleet sends in the clear: nothing.
set -euo pipefail

# need PATH PACKAGE...: installs the packages when PATH (a command or a file) is missing.
need() {
  local what="$1"
  shift
  if command -v "$what" >/dev/null || [[ -e "$what" ]]; then return 0; fi
  if [[ "$(id -u)" -ne 0 ]]; then
    echo "shoal: the tests need $* (root installs them)" >&2
    return 0
  fi
  echo "shoal: installing $* (apt-get)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
}

need qemu-aarch64 qemu-user
need /usr/aarch64-linux-gnu/lib/libgcc_s.so.1 libc6-arm64-cross libgcc-s1-arm64-cross
need shellcheck shellcheck
need debootstrap debootstrap
need systemd-analyze systemd
need tcpdump tcpdump
