#!/bin/sh
# Installs shoal as a systemd service, or upgrades it in place, keeping its data:
#
#   curl -fsSL URL/install.sh | sh -s -- [--token T] [--join HOST:PORT] [--labels k=v,...]
#       [--version V] [--no-start] [--uninstall [--purge]]
#
# Environment: SHOAL_TOKEN, SHOAL_JOIN, SHOAL_LABELS, SHOAL_VERSION, SHOAL_NO_START=1,
# SHOAL_DOWNLOAD_URL (where the binaries and SHA256SUMS are), SHOAL_INSTALL_URL (where this script
# is, for the joining line it prints), SHOAL_INSTALL_DOCKER=0 (never install Docker), SHOAL_ROOT
# (a directory to install under instead of /, for tests).
set -eu

download_url="${SHOAL_DOWNLOAD_URL:-https://get.shoal.sh/releases}"
# Where this script is fetched from, for the line that adds the next machine.
install_url="${SHOAL_INSTALL_URL:-https://get.shoal.sh/install.sh}"
token="${SHOAL_TOKEN:-}"
join="${SHOAL_JOIN:-}"
labels="${SHOAL_LABELS:-}"
version="${SHOAL_VERSION:-latest}"
no_start="${SHOAL_NO_START:-0}"
install_docker="${SHOAL_INSTALL_DOCKER:-1}"
root="${SHOAL_ROOT:-}"
uninstall=0
purge=0

bin_path="$root/usr/local/bin/shoal"
env_dir="$root/etc/shoal"
unit_path="$root/etc/systemd/system/shoal.service"
data_dir="$root/var/lib/shoal"
cache_dir="$root/var/cache/shoal"
api="https://127.0.0.1:7420"

# Progress goes to stderr: stdout carries only what a caller captures.
say() { printf 'shoal: %s\n' "$*" >&2; }
die() {
  printf 'shoal: %s\n' "$*" >&2
  exit 1
}

usage() {
  cat <<'EOF'
usage: install.sh [--token T] [--join HOST:PORT] [--labels k=v,...] [--version V]
                  [--no-start] [--uninstall [--purge]]
EOF
}

parse_args() {
  while [ "$#" -gt 0 ]; do
    case "$1" in
    --token) [ "$#" -ge 2 ] || die "--token needs a value"; token="$2"; shift 2 ;;
    --join) [ "$#" -ge 2 ] || die "--join needs HOST:PORT"; join="$2"; shift 2 ;;
    --labels) [ "$#" -ge 2 ] || die "--labels needs k=v,..."; labels="$2"; shift 2 ;;
    --version) [ "$#" -ge 2 ] || die "--version needs a value"; version="$2"; shift 2 ;;
    --no-start) no_start=1; shift ;;
    --uninstall) uninstall=1; shift ;;
    --purge) purge=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
    esac
  done
  if [ "$purge" = 1 ] && [ "$uninstall" = 0 ]; then die "--purge goes with --uninstall"; fi
  for value in "$token" "$join" "$labels" "$version"; do
    case "$value" in *[!A-Za-z0-9._:=,/@-]*) die "unexpected characters in \"$value\"" ;; esac
  done
}

# Root runs everything itself; anyone else needs sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "run this as root, or install sudo"
  fi
}

detect_arch() {
  [ "$(uname -s)" = Linux ] || die "shoal runs on Linux, not $(uname -s)"
  case "$(uname -m)" in
  x86_64 | amd64) echo x64 ;;
  aarch64 | arm64) echo arm64 ;;
  armv7l | armv6l)
    die "32-bit ARM has no shoal binary: install the 64-bit Raspberry Pi OS (arm64) instead"
    ;;
  *) die "no shoal binary for $(uname -m)" ;;
  esac
}

# The agent's health over HTTPS: public, and answered before this node has its cluster's
# certificate, so only the status is read.
probe() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsk --max-time 2 -o /dev/null "$1" 2>/dev/null
  else
    wget -q --no-check-certificate -T 2 -O /dev/null "$1" 2>/dev/null
  fi
}

fetch() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL --retry 2 -o "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then
    wget -q -O "$2" "$1"
  else
    die "neither curl nor wget is installed"
  fi
}

# Downloads the binary and SHA256SUMS into $1 and refuses a binary whose digest differs.
download() {
  name="shoal-linux-$(detect_arch)"
  url="$download_url/$version"
  say "downloading $name from $url"
  fetch "$url/$name" "$1/$name" || die "downloading $url/$name failed"
  fetch "$url/SHA256SUMS" "$1/SHA256SUMS" || die "downloading $url/SHA256SUMS failed"
  expected="$(awk -v n="$name" '$2 == n { print $1 }' "$1/SHA256SUMS")"
  [ -n "$expected" ] || die "SHA256SUMS does not list $name"
  actual="$(sha256sum "$1/$name" | awk '{ print $1 }')"
  [ "$expected" = "$actual" ] || die "checksum mismatch for $name: refusing to install it"
  chmod 0755 "$1/$name"
  "$1/$name" version >/dev/null || die "the downloaded $name does not run on this machine"
  echo "$1/$name"
}

is_debian() {
  [ -r /etc/os-release ] && grep -Eq '^(ID|ID_LIKE)=.*(debian|raspbian)' /etc/os-release
}

ensure_docker() {
  if command -v docker >/dev/null 2>&1 || command -v dockerd >/dev/null 2>&1; then return 0; fi
  if [ "$install_docker" = 1 ] && is_debian && command -v apt-get >/dev/null 2>&1; then
    say "installing Docker (Debian's docker.io)"
    if as_root sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null'; then
      return 0
    fi
    say "installing docker.io failed; shoal runs, but takes no tasks until a Docker engine does"
    return 0
  fi
  say "no Docker engine: install one (on Debian: apt-get install docker.io); shoal takes no tasks until then"
}

# The token is not among them: it goes to the agent as SHOAL_TOKEN, out of sight of `ps`.
agent_args() {
  args=""
  [ -n "$join" ] && args="$args --join $join"
  [ -n "$labels" ] && args="$args --labels $labels"
  echo "${args# }"
}

# The arguments given now, else those /etc/shoal/env kept from the first install.
kept_args() {
  if [ -n "$(agent_args)" ] || [ ! -r "$env_dir/env" ]; then
    agent_args
  else
    sed -n 's/^SHOAL_AGENT_ARGS="\(.*\)"$/\1/p' "$env_dir/env"
  fi
}

# /etc/shoal/env keeps the join token (SHOAL_TOKEN, read by the agent, never on its command line)
# and the agent's arguments, 0600. An upgrade without new options keeps those of the first install.
write_env() {
  as_root mkdir -p "$env_dir"
  if [ -z "$token" ] && [ -z "$(agent_args)" ] && [ -f "$env_dir/env" ]; then return 0; fi
  tmp="$(mktemp)"
  [ -n "$token" ] && printf 'SHOAL_TOKEN="%s"\n' "$token" >>"$tmp"
  printf 'SHOAL_AGENT_ARGS="%s"\n' "$(agent_args)" >>"$tmp"
  as_root install -m 0600 "$tmp" "$env_dir/env"
  rm -f "$tmp"
}

write_unit() {
  tmp="$(mktemp)"
  cat >"$tmp" <<'EOF'
[Unit]
Description=shoal: a container fleet of small machines
Documentation=https://get.shoal.sh
After=network-online.target docker.service
Wants=network-online.target

[Service]
EnvironmentFile=-/etc/shoal/env
# The binary unpacks its libSQL addon into TMPDIR at every start: not into /tmp, which may be
# RAM (tmpfs) or mounted noexec.
CacheDirectory=shoal
Environment=TMPDIR=/var/cache/shoal
ExecStart=/usr/local/bin/shoal agent $SHOAL_AGENT_ARGS
Restart=always
RestartSec=2
KillMode=process
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
EOF
  as_root mkdir -p "$(dirname "$unit_path")"
  as_root install -m 0644 "$tmp" "$unit_path"
  rm -f "$tmp"
}

has_systemd() { [ -z "$root" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

wait_for_api() {
  tries=0
  until probe "$api/v1/health"; do
    tries=$((tries + 1))
    [ "$tries" -lt 60 ] || die "the agent did not answer $api/v1/health within 30 s (journalctl -u shoal)"
    sleep 0.5
  done
}

start_service() {
  as_root systemctl daemon-reload
  as_root systemctl enable shoal.service >/dev/null 2>&1
  if [ "$no_start" = 1 ]; then
    say "installed; start it with: systemctl start shoal"
    return 0
  fi
  as_root systemctl restart shoal.service
  wait_for_api
  as_root "$bin_path" status || true
  say "to add another machine, run there:"
  printf '  curl -fsSL %s | sh -s -- --token %s\n' "$install_url" "$(as_root "$bin_path" token)"
}

install_shoal() {
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  binary="$(download "$work")"
  as_root mkdir -p "$(dirname "$bin_path")"
  # A new file renamed over the old one: a running agent keeps its binary until it restarts.
  as_root install -m 0755 "$binary" "$bin_path.new"
  as_root mv -f "$bin_path.new" "$bin_path"
  say "installed $("$bin_path" version | awk '/^version:/ { print $2 }') at $bin_path"
  ensure_docker
  write_env
  write_unit
  if has_systemd; then
    start_service
  else
    say "no systemd here: run the agent yourself, e.g. SHOAL_TOKEN=<token> nohup $bin_path agent $(kept_args) &"
  fi
}

uninstall_shoal() {
  if has_systemd; then
    as_root systemctl disable --now shoal.service >/dev/null 2>&1 || true
  fi
  as_root rm -f "$unit_path" "$bin_path"
  as_root rm -rf "$env_dir" "$cache_dir"
  if has_systemd; then as_root systemctl daemon-reload; fi
  if [ "$purge" = 1 ]; then
    as_root rm -rf "$data_dir"
    say "removed shoal and its data"
  else
    say "removed shoal; its data stays in $data_dir (--purge removes it)"
  fi
}

parse_args "$@"
if [ "$uninstall" = 1 ]; then uninstall_shoal; else install_shoal; fi
