#!/usr/bin/env bash
# Builds cowdisk (Release) and puts `cowdisk` on the PATH. Needs the .NET 10 SDK; metadata is embedded LiteDB.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${PREFIX:-/usr/local}"
if ! mkdir -p "$prefix/bin" 2>/dev/null || [ ! -w "$prefix/bin" ]; then prefix="$HOME/.local"; fi
lib="$prefix/lib/cowdisk"
mkdir -p "$prefix/bin"
case "$(uname -m)" in x86_64) rid=linux-x64 ;; aarch64) rid=linux-arm64 ;; *) rid="" ;; esac
publish() {   # into folder, with these options
  local into=$1; shift
  rm -rf "$into"; mkdir -p "$into"
  dotnet publish src/Cli/CowDisk.Cli.csproj -c Release -o "$into" --nologo -v quiet "$@" >/dev/null
}
# The JIT build, precompiled (ReadyToRun) so it starts without a warm-up. First choice: self-contained and
# composite, the runtime and cowdisk compiled as one (~100 MB); then framework-dependent (6 MB); then a plain build.
jit() {
  [ -n "$rid" ] && publish "$1" -r "$rid" --self-contained true -p:PublishReadyToRun=true -p:PublishReadyToRunComposite=true && return
  [ -n "$rid" ] && publish "$1" -r "$rid" --self-contained false -p:PublishReadyToRun=true && return
  publish "$1"
}
# First choice: `cowdisk` compiled ahead of time (Native AOT, ~14 MB, needs gcc or clang): a command starts in
# ~10 ms, also with a cold page cache. The attach and serve daemons run the JIT build in server/ (faster there:
# tiered PGO). Without a C toolchain, the JIT build is `cowdisk` itself.
if [ -n "$rid" ] && publish "$lib" -r "$rid" -p:PublishAot=true; then
  rm -f "$lib"/*.dbg "$lib"/*.pdb
  jit "$lib/server" || { rm -rf "$lib/server"; echo "note: no server build; attach and serve run the AOT build"; }
else
  jit "$lib"
fi
ln -sf "$lib/cowdisk" "$prefix/bin/cowdisk"
echo "installed: $prefix/bin/cowdisk"
command -v cowdisk >/dev/null || echo "note: add $prefix/bin to your PATH"
