#!/usr/bin/env bash
# Installs the third-party MCP servers the tests in tests/mcp_third_party.rs run against, at
# pinned versions, into target/mcp-servers/ (ignored by git). Re-running skips what is there.
set -euo pipefail
cd "$(dirname "$0")/../.."

EVERYTHING_VERSION=2026.8.31
FILESYSTEM_VERSION=2026.8.31
TIME_VERSION=2026.10.19

DIR=target/mcp-servers
mkdir -p "$DIR"
STAMP="$DIR/.installed-$EVERYTHING_VERSION-$FILESYSTEM_VERSION-$TIME_VERSION"
if [ -f "$STAMP" ]; then
  echo "MCP test servers already installed in $DIR"
  exit 0
fi

command -v npm >/dev/null || { echo "npm is needed to install the MCP test servers" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is needed to install the MCP test servers" >&2; exit 1; }

npm install --prefix "$DIR/node" --no-audit --no-fund --loglevel=error \
  "@modelcontextprotocol/server-everything@$EVERYTHING_VERSION" \
  "@modelcontextprotocol/server-filesystem@$FILESYSTEM_VERSION"

rm -rf "$DIR/venv"
python3 -m venv "$DIR/venv"
"$DIR/venv/bin/pip" install --quiet --disable-pip-version-check "mcp-server-time==$TIME_VERSION"

rm -f "$DIR"/.installed-*
touch "$STAMP"
echo "MCP test servers installed in $DIR"
