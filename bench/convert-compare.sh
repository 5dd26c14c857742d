#!/usr/bin/env bash
# Times `cowdisk convert` against `qemu-img convert` on the same conversions of the same data: a disk that is
# half random data and half holes (1 MiB pieces): raw → image, image → raw, qcow2 → raw (the same qcow2 for both),
# image → qcow2 and qcow2 → image, image → qcow2 compressed,
# with the page cache dropped before each run when root. Each figure is the median of ROUNDS alternating runs.
# cowdisk convert makes its output durable (fdatasync, then rename); qemu-img convert does not, so its runs end
# with `sync OUTPUT` (an fsync of that one file) to time the same work.
#
#   bench/convert-compare.sh             # 2 GiB disk, 3 rounds
#   SIZE=8G ROUNDS=5 bench/convert-compare.sh
#
# Needs qemu-img. Settings (environment): COWDISK (default: bench/run's install in bench/.install, the Release build, then PATH), SIZE (default 2G),
# ROUNDS (default 3), WORKDIR (default: a new folder under /var/tmp), TSV (also append the medians to this file as
# "workload<TAB>subject<TAB>seconds<TAB>s<TAB>lower" lines; bench/run uses it).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
SIZE=${SIZE:-2G}
ROUNDS=${ROUNDS:-3}
if [[ -z "${COWDISK:-}" ]]; then
  for c in "$here/bench/.install/bin/cowdisk" "$here/src/Cli/bin/Release/net10.0/cowdisk" "$(command -v cowdisk || true)"; do
    [[ -n "$c" && -x "$c" ]] && COWDISK=$c && break
  done
fi
die() { echo "convert-compare: $*" >&2; exit 1; }
[[ -x "${COWDISK:-}" ]] || die "no cowdisk executable (build it, or set COWDISK)"
command -v qemu-img >/dev/null || die "qemu-img is not installed"
WORKDIR=${WORKDIR:-$(mktemp -d /var/tmp/convert-compare.XXXXXX)}
mkdir -p "$WORKDIR"
trap 'rm -rf "$WORKDIR"' EXIT
trap 'exit 130' INT TERM
cd "$WORKDIR"

bytes=$(numfmt --from=iec "$SIZE")
echo "preparing $SIZE (half data, half holes) in $WORKDIR"
truncate -s "$bytes" src.raw
for ((mib = 0; mib < bytes / 1048576; mib += 2)); do echo "$mib"; done |
  xargs -P 2 -I{} dd if=/dev/urandom of=src.raw bs=1M seek={} count=1 conv=notrunc status=none
"$COWDISK" convert src.raw src.img --to cowdisk --quiet
qemu-img convert -f raw -O qcow2 src.raw src.qcow2

drop() { [[ $EUID -eq 0 ]] && sync && echo 3 > /proc/sys/vm/drop_caches || true; }
seconds() { local t0 t1; drop; t0=$(date +%s.%N); "$@" >/dev/null 2>&1 || die "failed: $*"; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A t
run() {   # name, cowdisk command..., -- qemu command...
  local name=$1; shift
  local cow=() qemu=()
  while [[ $1 != -- ]]; do cow+=("$1"); shift; done; shift
  qemu=("$@")
  for ((r = 1; r <= ROUNDS; r++)); do
    rm -f out.*
    if (( r % 2 )); then t[$name,c]+="$(seconds "${cow[@]}") "; rm -f out.*; t[$name,q]+="$(seconds "${qemu[@]}") "
    else t[$name,q]+="$(seconds "${qemu[@]}") "; rm -f out.*; t[$name,c]+="$(seconds "${cow[@]}") "; fi
  done
  rm -f out.*
}
qemu() { qemu-img convert "$@" && sync "${@: -1}"; }   # then fsync the output, as cowdisk does
run "raw -> image" "$COWDISK" convert src.raw out.img --to cowdisk -- qemu -f raw -O qcow2 src.raw out.qcow2
run "image -> raw" "$COWDISK" convert src.img out.raw --to raw -- qemu -f qcow2 -O raw src.qcow2 out.raw
run "qcow2 -> raw" "$COWDISK" convert src.qcow2 out.raw --to raw -- qemu -f qcow2 -O raw src.qcow2 out.raw
run "image -> qcow2" "$COWDISK" convert src.img out.qcow2 --to qcow2 -- qemu -f qcow2 -O qcow2 src.qcow2 out.qcow2
run "qcow2 -> image" "$COWDISK" convert src.qcow2 out.img --to cowdisk -- qemu -f qcow2 -O qcow2 src.qcow2 out.qcow2
run "image -> qcow2, compressed" "$COWDISK" convert src.img out.qcow2 --to qcow2 --compress -- qemu -c -f qcow2 -O qcow2 src.qcow2 out.qcow2

m() { tr ' ' '\n' <<<"${t[$1]}" | grep . | median; }
printf '\n%-30s %12s %12s %8s\n' "convert, $SIZE (half data), median of $ROUNDS" "cowdisk" "qemu-img" "ratio"
for name in "raw -> image" "image -> raw" "qcow2 -> raw" "image -> qcow2" "qcow2 -> image" "image -> qcow2, compressed"; do
  c=$(m "$name,c") q=$(m "$name,q")
  printf '%-30s %10.2f s %10.2f s %7.2fx\n' "$name" "$c" "$q" "$(echo "$q / $c" | bc -l)"
  if [[ -n "${TSV:-}" ]]; then
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "cowdisk convert" "$c" s lower "$name" "qemu-img convert" "$q" s lower >> "$TSV"
  fi
done
echo "(image: cowdisk for cowdisk, qcow2 for qemu-img; ratio: qemu-img's time / cowdisk's; load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs, cowdisk $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo '?'))"
