#!/usr/bin/env bash
# Builds cowdisk (Release) and puts `cowdisk` on the PATH. Needs the .NET 10 SDK; metadata is embedded LiteDB.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${PREFIX:-/usr/local}"
if ! mkdir -p "$prefix/bin" 2>/dev/null || [ ! -w "$prefix/bin" ]; then prefix="$HOME/.local"; fi
mkdir -p "$prefix/lib/cowdisk" "$prefix/bin"
# ReadyToRun (precompiled) roughly halves the start of every command (0.14 s → 0.08 s for a small convert);
# where the precompiler cannot be had, a plain build does the same work a little slower.
case "$(uname -m)" in x86_64) rid=linux-x64 ;; aarch64) rid=linux-arm64 ;; *) rid="" ;; esac
if [ -z "$rid" ] || ! dotnet publish src/Cli/CowDisk.Cli.csproj -c Release -r "$rid" --self-contained false -p:PublishReadyToRun=true \
     -o "$prefix/lib/cowdisk" --nologo -v quiet >/dev/null; then
  dotnet publish src/Cli/CowDisk.Cli.csproj -c Release -o "$prefix/lib/cowdisk" --nologo -v quiet
fi
ln -sf "$prefix/lib/cowdisk/cowdisk" "$prefix/bin/cowdisk"
echo "installed: $prefix/bin/cowdisk"
command -v cowdisk >/dev/null || echo "note: add $prefix/bin to your PATH"
