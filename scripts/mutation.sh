#!/usr/bin/env bash
# Mutation testing of the engine's data path with Stryker.NET. Not part of CI: a full run takes
# about an hour on a 2-core machine. See docs/MUTATION.md.
#
# The configuration is tests/CowDisk.Tests/stryker-config.json (Stryker runs from the test project's
# folder and reads stryker-config.json there). Extra arguments go to `dotnet stryker` as they are, e.g.
#   scripts/mutation.sh --mutate '**/Engine/Allocation/**/*.cs'    # one area only
#   scripts/mutation.sh --since:main                               # only files changed since main
# Reports (html, markdown, json) land in tests/CowDisk.Tests/StrykerOutput/<date>/reports/ (git-ignored).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/tests/CowDisk.Tests"

dotnet tool restore >/dev/null
status=0
dotnet stryker --skip-version-check "$@" || status=$?

latest=$(ls -1d StrykerOutput/*/ 2>/dev/null | sort | tail -n 1)
if [ -n "$latest" ] && [ -d "$latest/reports" ]; then
  echo
  echo "reports in $root/tests/CowDisk.Tests/${latest}reports/:"
  ls -1 "$latest/reports" | sed 's/^/  /'
else
  echo "no report was written (stryker exit $status)"
fi
exit "$status"
