#!/usr/bin/env bash
# Builds cowdisk (Release) and puts `cowdisk` on the PATH. Needs the .NET 10 SDK; metadata is embedded LiteDB.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${PREFIX:-/usr/local}"
if ! mkdir -p "$prefix/bin" 2>/dev/null || [ ! -w "$prefix/bin" ]; then prefix="$HOME/.local"; fi
mkdir -p "$prefix/bin" "$prefix/lib"
lib="$prefix/lib/cowdisk"
# Built aside and moved into place whole at the end: an interrupted install leaves the previous one as it was.
new="$lib.new.$$"
trap 'rm -rf "$new"' EXIT
case "$(uname -m)" in x86_64) rid=linux-x64 ;; aarch64) rid=linux-arm64 ;; *) rid="" ;; esac
publish() {   # into folder, with these options
  local into=$1; shift
  rm -rf "$into"; mkdir -p "$into"
  dotnet publish src/Cli/CowDisk.Cli.csproj -c Release -o "$into" --nologo -v quiet "$@" >/dev/null
}
# The JIT build, precompiled (ReadyToRun) so it starts without a warm-up. First choice: self-contained and
# composite, the runtime and cowdisk compiled as one (~100 MB); then framework-dependent (6 MB, runs on the
# installed .NET runtime); then a plain build.
jit() {
  if [ -n "$rid" ] && publish "$1" -r "$rid" --self-contained true -p:PublishReadyToRun=true -p:PublishReadyToRunComposite=true; then
    built="self-contained ReadyToRun"
  elif [ -n "$rid" ] && publish "$1" -r "$rid" --self-contained false -p:PublishReadyToRun=true; then
    built="ReadyToRun on the installed .NET runtime"
  else
    publish "$1" && built="plain build on the installed .NET runtime"
  fi
}
# First choice: `cowdisk` compiled ahead of time (Native AOT, ~14 MB, needs gcc or clang): a command starts in
# ~10 ms, also with a cold page cache. The attach and serve daemons run the JIT build in server/ (faster there:
# tiered PGO). Without a C toolchain, the JIT build is `cowdisk` itself.
if [ -n "$rid" ] && publish "$new" -r "$rid" -p:PublishAot=true; then
  rm -f "$new"/*.dbg "$new"/*.pdb
  if jit "$new/server"; then kind="Native AOT; attach and serve run the $built build in server/"
  else rm -rf "$new/server"; kind="Native AOT (no server build: attach and serve run it too)"; fi
else
  jit "$new"
  kind="$built (no Native AOT build: is gcc or clang installed?)"
fi
rm -rf "$lib.old"
if [ -e "$lib" ]; then mv "$lib" "$lib.old"; fi
mv "$new" "$lib"
rm -rf "$lib.old"
ln -sf "$lib/cowdisk" "$prefix/bin/cowdisk"
echo "installed: $prefix/bin/cowdisk ($kind)"
command -v cowdisk >/dev/null || echo "note: add $prefix/bin to your PATH"
