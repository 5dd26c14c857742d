#!/usr/bin/env bash
# Builds cowdisk (Release) and puts `cowdisk` on the PATH. Needs the .NET 10 SDK; metadata is embedded LiteDB.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${PREFIX:-/usr/local}"
if ! mkdir -p "$prefix/bin" 2>/dev/null || [ ! -w "$prefix/bin" ]; then prefix="$HOME/.local"; fi
mkdir -p "$prefix/lib/cowdisk" "$prefix/bin"
dotnet publish src/Cli/CowDisk.Cli.csproj -c Release -o "$prefix/lib/cowdisk" --nologo -v quiet
ln -sf "$prefix/lib/cowdisk/cowdisk" "$prefix/bin/cowdisk"
echo "installed: $prefix/bin/cowdisk"
command -v cowdisk >/dev/null || echo "note: add $prefix/bin to your PATH"
