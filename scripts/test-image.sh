#!/usr/bin/env bash
# Builds the local test image shoal-test/busybox:1 with `docker import` from a rootfs made of
# Debian's busybox-static, so tests never need a registry (none is reachable; nothing pulls).
# Idempotent: does nothing when the engine already has the image. Honours DOCKER_HOST.
set -euo pipefail

readonly image="${SHOAL_TEST_IMAGE:-shoal-test/busybox:1}"
readonly busybox="${SHOAL_BUSYBOX:-/bin/busybox}"

say() { echo "test-image: $*" >&2; }
die() {
  say "FAILED: $*"
  exit 1
}

if docker image inspect "$image" >/dev/null 2>&1; then
  exit 0
fi
timeout 10 docker info >/dev/null 2>&1 ||
  die "no Docker engine answers at ${DOCKER_HOST:-unix:///var/run/docker.sock}: run scripts/ensure-docker.sh first"

[[ -x "$busybox" ]] || die "$busybox is missing: install Debian's busybox-static (scripts/ensure-docker.sh does)"
# A dynamically linked busybox would not run in an image without a libc.
if command -v file >/dev/null 2>&1 && ! file -L "$busybox" | grep -q 'statically linked'; then
  die "$busybox is not statically linked: install busybox-static, not busybox"
fi

rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT

mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,www,proc,sys,dev,root}
chmod 1777 "$rootfs/tmp"
cp "$busybox" "$rootfs/bin/busybox"
# One symlink per applet (sh, httpd, sleep, wget, ...), as `busybox --install -s` would make.
for applet in $("$busybox" --list); do
  [[ "$applet" == "busybox" ]] && continue
  [[ -e "$rootfs/bin/$applet" ]] || ln -s busybox "$rootfs/bin/$applet"
done
echo "root:x:0:0:root:/root:/bin/sh" >"$rootfs/etc/passwd"
echo "root:x:0:" >"$rootfs/etc/group"
# WORKDIR is /www so that a plain `httpd -f -p 80` serves this page.
echo "shoal test image" >"$rootfs/www/index.html"

say "importing $image from $busybox"
tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin' \
  --change 'WORKDIR /www' \
  --change 'CMD ["sh"]' \
  - "$image" >/dev/null || die "docker import of $image failed"
docker image inspect "$image" >/dev/null 2>&1 || die "$image is not in the engine after import"
say "built $image"
