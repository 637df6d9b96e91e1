#!/usr/bin/env bash
# Serves a release on 127.0.0.1 the way the real download location lays it out, so anyone can try
# the real `curl | sh` path locally:
#   scripts/serve-release.sh [PORT]          (default 8787; builds dist/ first when it is missing)
#   curl -fsSL http://127.0.0.1:8787/install.sh | SHOAL_DOWNLOAD_URL=http://127.0.0.1:8787/releases sh
# Layout: /install.sh, /releases/latest/{shoal-linux-x64,shoal-linux-arm64,SHA256SUMS}, and the
# same under /releases/VERSION.
set -euo pipefail
cd "$(dirname "$0")/.."
port="${1:-8787}"
[[ -f dist/SHA256SUMS ]] || npm run -s build
version="$(node -p 'require("./package.json").version')"
site="$(mktemp -d)"
trap 'rm -rf "$site"' EXIT
trap 'exit 143' TERM INT
mkdir -p "$site/releases"
cp install.sh "$site/install.sh"
cp -r dist "$site/releases/latest"
ln -s latest "$site/releases/$version"
echo "serving $site on http://127.0.0.1:$port (Ctrl-C stops)" >&2
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$site"
