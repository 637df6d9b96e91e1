#!/usr/bin/env bash
# Runs inside `unshare --net --mount --fork` (see install.test.ts): a network namespace with only
# loopback, where a server on 127.0.0.1 serves SITE (install.sh, releases/latest, bad/latest) and
# a clean Debian root ROOT runs `curl | sh` through chroot. Prints one `ok: ...` line per check
# and exits non-zero at the first that fails.
#   install-root.sh ROOT SITE PORT
set -euo pipefail
root="$1" site="$2" port="$3"
url="http://127.0.0.1:$port"

fail() {
  echo "FAIL: $*"
  exit 1
}
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin /bin/sh -c "$1"; }

ip link set lo up
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$site" >/dev/null 2>&1 &
server=$!
trap 'kill "$server"' EXIT
mount -t proc proc "$root/proc"
for _ in $(seq 100); do curl -fs -o /dev/null "$url/install.sh" && break; sleep 0.1; done

if in_root "curl -fsS -m 3 -o /dev/null https://deb.debian.org" 2>/dev/null; then
  fail "the root reached the outside"
fi
echo "ok: nothing outside loopback answers"

if nobody="$(chroot --userspec=65534:65534 "$root" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/tmp \
  /bin/sh -c "curl -fsSL $url/install.sh | SHOAL_DOWNLOAD_URL=$url/releases sh 2>&1")"; then
  fail "a user without root or sudo installed: $nobody"
fi
grep -q "run this as root, or install sudo" <<<"$nobody" || fail "no word on root: $nobody"
[[ ! -e "$root/usr/local/bin/shoal" ]] || fail "a user without root left a binary"
echo "ok: without root or sudo it stops and says why"

first="$(in_root "curl -fsSL $url/install.sh | SHOAL_DOWNLOAD_URL=$url/releases sh -s -- --token shoal1.abc.def 2>&1")" ||
  fail "install: $first"
in_root "/usr/local/bin/shoal version" | grep -q '^arch: *linux/x64$' || fail "the binary does not run"
echo "ok: the binary lands and runs"
grep -q "installing docker.io failed\|no Docker engine" <<<"$first" || fail "no word on Docker: $first"
echo "ok: Docker could not be installed, and it says so"
grep -q "no systemd here: run the agent yourself" <<<"$first" || fail "no word on systemd: $first"
# shellcheck disable=SC2016 # the unit's own $SHOAL_AGENT_ARGS, matched literally
grep -q '^ExecStart=/usr/local/bin/shoal agent \$SHOAL_AGENT_ARGS$' "$root/etc/systemd/system/shoal.service" ||
  fail "the unit lacks its ExecStart"
[[ "$(stat -c %a "$root/etc/shoal/env")" == 600 ]] || fail "env is not 0600"
echo "ok: the unit and the env are written, and it says how to run without systemd"

mkdir -p "$root/var/lib/shoal" && echo kept >"$root/var/lib/shoal/state.db"
before="$(sha256sum "$root/usr/local/bin/shoal")"
again="$(in_root "curl -fsSL $url/install.sh | SHOAL_DOWNLOAD_URL=$url/releases SHOAL_INSTALL_DOCKER=0 sh 2>&1")" ||
  fail "second run: $again"
[[ "$(sha256sum "$root/usr/local/bin/shoal")" == "$before" ]] || fail "the upgrade changed the binary"
grep -q '^SHOAL_TOKEN="shoal1.abc.def"$' "$root/etc/shoal/env" || fail "the upgrade lost the token"
[[ "$(cat "$root/var/lib/shoal/state.db")" == kept ]] || fail "the upgrade touched the data"
echo "ok: a second run upgrades in place and keeps the arguments and the data"

if bad="$(in_root "curl -fsSL $url/install.sh | SHOAL_DOWNLOAD_URL=$url/bad SHOAL_INSTALL_DOCKER=0 sh 2>&1")"; then
  fail "a corrupted SHA256SUMS was accepted"
fi
grep -q "checksum mismatch" <<<"$bad" || fail "no word on the checksum: $bad"
[[ "$(sha256sum "$root/usr/local/bin/shoal")" == "$before" ]] || fail "the refused binary replaced the good one"
echo "ok: a corrupted SHA256SUMS is refused and changes nothing"

mkdir -p "$root/var/cache/shoal" && touch "$root/var/cache/shoal/.bun-0-addon.node"
in_root "curl -fsSL $url/install.sh | sh -s -- --uninstall" >/dev/null 2>&1 || fail "uninstall"
for gone in usr/local/bin/shoal etc/shoal etc/systemd/system/shoal.service var/cache/shoal; do
  [[ ! -e "$root/$gone" ]] || fail "uninstall left /$gone"
done
[[ -e "$root/var/lib/shoal/state.db" ]] || fail "uninstall removed the data"
echo "ok: --uninstall leaves only the data"
in_root "curl -fsSL $url/install.sh | sh -s -- --uninstall --purge" >/dev/null 2>&1 || fail "purge"
[[ ! -e "$root/var/lib/shoal" ]] || fail "--purge left the data"
echo "ok: --purge removes the data too"
