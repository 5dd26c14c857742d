#!/usr/bin/env bash
# Installs what the tests need (Debian packages), builds, and runs the whole test suite.
# With CI=true a missing prerequisite fails the run instead of being skipped.
set -uo pipefail
cd "$(dirname "$0")/.."

# gcc: scripts/install.sh links the Native AOT build with it (the tests run the installed build).
packages=(qemu-utils libnbd-bin fuse3 fio qemu-system-common e2fsprogs util-linux kmod openssl gcc)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing: ${missing[*]}"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/tmp/cowdisk-apt.log 2>&1 \
      || { echo "apt-get install failed (see /tmp/cowdisk-apt.log)"; [ "${CI:-}" = true ] && exit 1; }
  else
    echo "missing packages (not root, cannot install): ${missing[*]}"
    [ "${CI:-}" = true ] && exit 1
  fi
fi
command -v dotnet >/dev/null || { echo "the .NET SDK (dotnet) is not installed"; exit 1; }
[ "${CI:-}" = true ] && [ "$(id -u)" != 0 ] && { echo "CI must run as root: the attach tests mount FUSE and bind loop devices"; exit 1; }

export COWDISK_TEST_REQUIRE_ALL="${CI:-false}"
# The end-to-end tests run what a user installs: scripts/install.sh's build (Native AOT, with the JIT build that
# serves in server/), into a folder of its own.
installed=$(mktemp -d /tmp/cowdisk-installed.XXXXXX)
chmod 755 "$installed"   # as /usr/local is: the tests run `cowdisk list` as a user who is not root too
trap 'rm -rf "$installed"' EXIT
echo "building the installed cowdisk (scripts/install.sh) into $installed"
PREFIX="$installed" bash scripts/install.sh >/dev/null || { echo "scripts/install.sh failed"; exit 1; }
[ "${CI:-}" = true ] && [ ! -d "$installed/lib/cowdisk/server" ] && { echo "scripts/install.sh made no Native AOT build (is gcc installed?)"; exit 1; }
export COWDISK_TEST_EXECUTABLE="$installed/bin/cowdisk"
log=$(mktemp)
dotnet test CowDisk.sln -c Release --nologo 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The closing line in the plain form CI reads: "N passed, N failed, N skipped".
summary=$(grep -E '^(Passed|Failed)!' "$log" | tail -n 1)
passed=$(sed -nE 's/.*Passed: *([0-9]+).*/\1/p' <<<"$summary")
failed=$(sed -nE 's/.*Failed: *([0-9]+),.*/\1/p' <<<"$summary")
skipped=$(sed -nE 's/.*Skipped: *([0-9]+).*/\1/p' <<<"$summary")
rm -f "$log"
if [ -z "$passed" ]; then echo "no test summary found"; exit 1; fi
echo "${passed} passed, ${failed:-0} failed, ${skipped:-0} skipped"
exit "$status"
