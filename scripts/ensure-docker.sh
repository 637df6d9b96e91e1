#!/usr/bin/env bash
# Makes sure a Docker engine answers for shoal's tests: installs Debian's docker.io and
# busybox-static when missing, starts dockerd in the background (CI machines have no systemd)
# and waits until `docker info` answers. Quick and idempotent when an engine already answers.
# Exits non-zero with the exact reason when it cannot.
set -euo pipefail

readonly wait_seconds_max="${SHOAL_DOCKER_WAIT_SECONDS:-60}"
readonly dockerd_log="${SHOAL_DOCKERD_LOG:-/var/log/shoal-dockerd.log}"
readonly lock_file="/var/lock/shoal-ensure-docker.lock"
readonly default_host="unix:///var/run/docker.sock"

say() { echo "ensure-docker: $*" >&2; }
die() {
  say "FAILED: $*"
  exit 1
}

engine_answers() {
  timeout 10 docker info >/dev/null 2>&1
}

apt_install() {
  # The package lists may be absent on a fresh machine; refresh them once before installing.
  say "installing $* with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1; then
    apt-get update -q >/dev/null 2>&1 || die "apt-get update failed (is Debian's archive reachable?)"
    apt-get install -y -q --no-install-recommends "$@" >/dev/null ||
      die "apt-get install $* failed"
  fi
}

ensure_packages() {
  local missing=()
  dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
  if [[ "${1:-}" == "with-engine" ]] && ! command -v dockerd >/dev/null 2>&1; then
    missing+=(docker.io)
  fi
  if ((${#missing[@]} > 0)); then
    [[ $EUID -eq 0 ]] || die "packages ${missing[*]} are missing and installing them needs root"
    apt_install "${missing[@]}"
  fi
}

start_dockerd() {
  say "no Docker engine answers; starting dockerd (log: $dockerd_log)"
  mkdir -p "$(dirname "$dockerd_log")"
  # setsid detaches dockerd from this script's process group so it outlives the caller; it must
  # not inherit the lock descriptor, or the lock would stay held for as long as dockerd runs.
  setsid nohup dockerd >>"$dockerd_log" 2>&1 </dev/null 9>&- &
  local pid=$!
  local waited=0
  until engine_answers; do
    if ! kill -0 "$pid" 2>/dev/null; then
      say "dockerd exited; last lines of $dockerd_log:"
      tail -n 20 "$dockerd_log" >&2 || true
      die "dockerd could not start (see the lines above)"
    fi
    if ((waited >= wait_seconds_max)); then
      say "last lines of $dockerd_log:"
      tail -n 20 "$dockerd_log" >&2 || true
      die "dockerd (pid $pid) did not answer 'docker info' within ${wait_seconds_max}s"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  say "dockerd answers (pid $pid, after ${waited}s)"
}

main() {
  if engine_answers; then
    ensure_packages
    return 0
  fi
  # A DOCKER_HOST that points elsewhere is someone else's engine: starting a local one would
  # not make it answer, so report it instead.
  if [[ -n "${DOCKER_HOST:-}" && "$DOCKER_HOST" != "$default_host" ]]; then
    die "DOCKER_HOST=$DOCKER_HOST does not answer 'docker info'; start that engine or unset DOCKER_HOST"
  fi
  [[ $EUID -eq 0 ]] || die "no Docker engine answers and starting one needs root (running as uid $EUID)"
  ensure_packages with-engine
  command -v docker >/dev/null 2>&1 || die "the docker client is missing after installing docker.io"
  # Two concurrent callers must not both start dockerd: the second waits, then re-checks.
  mkdir -p "$(dirname "$lock_file")"
  exec 9>"$lock_file"
  flock -w "$wait_seconds_max" 9 || die "another ensure-docker.sh holds $lock_file"
  if engine_answers; then
    say "Docker engine answers (started by another caller)"
    return 0
  fi
  if pgrep -x dockerd >/dev/null 2>&1; then
    die "a dockerd process runs (pid $(pgrep -x dockerd | tr '\n' ' ')) but 'docker info' does not answer; see $dockerd_log"
  fi
  start_dockerd
}

main "$@"
