#!/usr/bin/env bash
# Compares `cowdisk serve` with `qemu-nbd` serving the same data as qcow2 (64 KiB clusters): nbdcopy of the
# whole image out of each (to null: and to a file), and 4 KiB read and write IOPS through `qemu-img bench`
# (queue depth 32; qemu-img bench has no random mode, so offsets advance by a 1 MiB + 4 KiB step and wrap,
# which touches every cluster in an order the page cache cannot prefetch). Rounds alternate the subjects.
#
#   bench/nbd-compare.sh               # 1 GiB of random data, 3 rounds
#   SIZE=4G ROUNDS=5 bench/nbd-compare.sh
#
# Needs qemu-img, qemu-nbd, nbdcopy. Settings (environment): COWDISK (default: bench/run's install in bench/.install, the Release build, then PATH),
# SIZE (default 1G), ROUNDS (default 3), WORKDIR (default: a new folder under /var/tmp), TSV (also append the
# medians to this file as "workload<TAB>subject<TAB>value<TAB>unit<TAB>higher|lower" lines; bench/run uses it).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
SIZE=${SIZE:-1G}
ROUNDS=${ROUNDS:-3}
if [[ -z "${COWDISK:-}" ]]; then
  for c in "$here/bench/.install/bin/cowdisk" "$here/src/Cli/bin/Release/net10.0/cowdisk" "$(command -v cowdisk || true)"; do
    [[ -n "$c" && -x "$c" ]] && COWDISK=$c && break
  done
fi
die() { echo "nbd-compare: $*" >&2; exit 1; }
[[ -x "${COWDISK:-}" ]] || die "no cowdisk executable (build it, or set COWDISK)"
for tool in qemu-img qemu-nbd nbdcopy; do command -v "$tool" >/dev/null || die "$tool is not installed"; done

WORKDIR=${WORKDIR:-$(mktemp -d /var/tmp/nbd-compare.XXXXXX)}
mkdir -p "$WORKDIR"
export COWDISK_RUN_DIR="$WORKDIR/run"
serve_pid="" qemu_pid=""
cleanup() {
  set +e
  [[ -n "$serve_pid" ]] && kill -TERM "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
  [[ -n "$qemu_pid" ]] && kill "$qemu_pid" 2>/dev/null && wait "$qemu_pid" 2>/dev/null
  rm -rf "$WORKDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bytes=$(numfmt --from=iec "$SIZE")
echo "preparing $SIZE of random data in $WORKDIR"
head -c "$bytes" /dev/urandom > "$WORKDIR/data.raw"
"$COWDISK" create "$WORKDIR/disk.img" --size "$SIZE" >/dev/null
"$COWDISK" io "$WORKDIR/disk.img" write --from "$WORKDIR/data.raw" 0 "$SIZE" >/dev/null
qemu-img convert -f raw -O qcow2 -o cluster_size=64k "$WORKDIR/data.raw" "$WORKDIR/disk.qcow2"
rm -f "$WORKDIR/data.raw"

cow_uri="nbd+unix:///disk?socket=$WORKDIR/cow.sock"
qemu_uri="nbd+unix:///disk?socket=$WORKDIR/qemu.sock"
start_servers() {
  "$COWDISK" serve "$WORKDIR/disk.img" --name disk --socket "$WORKDIR/cow.sock" >/dev/null 2>"$WORKDIR/serve.log" &
  serve_pid=$!
  qemu-nbd -f qcow2 -x disk -k "$WORKDIR/qemu.sock" --shared=16 --persistent --cache=writeback "$WORKDIR/disk.qcow2" &
  qemu_pid=$!
  for _ in $(seq 100); do [[ -S "$WORKDIR/cow.sock" && -S "$WORKDIR/qemu.sock" ]] && return; sleep 0.1; done
  die "servers did not start (see $WORKDIR/serve.log)"
}
start_servers

seconds() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1 || die "failed: $*"; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A results
run_all() {   # subject uri
  local s=$1 uri=$2
  results[$s,copy_null]+="$(seconds nbdcopy "$uri" null:) "
  results[$s,copy_file]+="$(seconds nbdcopy "$uri" "$WORKDIR/out.raw") "
  rm -f "$WORKDIR/out.raw"
  results[$s,read]+="$(seconds qemu-img bench -f raw -c 100000 -d 32 -s 4k -S 1052672 "$uri") "
  results[$s,write]+="$(seconds qemu-img bench -f raw -w -c 100000 -d 32 -s 4k -S 1052672 "$uri") "
}
for round in $(seq "$ROUNDS"); do
  if (( round % 2 )); then run_all cowdisk "$cow_uri"; run_all qemu "$qemu_uri"; else run_all qemu "$qemu_uri"; run_all cowdisk "$cow_uri"; fi
done

m() { tr ' ' '\n' <<<"${results[$1,$2]}" | grep . | median; }
tsv() { [[ -z "${TSV:-}" ]] || printf '%s\t%s\t%s\t%s\t%s\n' "$@" >> "$TSV"; }
printf '\n%-44s %14s %14s %10s\n' "nbd-compare, $SIZE, median of $ROUNDS" "cowdisk serve" "qemu-nbd qcow2" "ratio"
for k in copy_null copy_file; do
  c=$(m cowdisk $k) q=$(m qemu $k)
  printf '%-44s %10.0f MiB/s %10.0f MiB/s %9.2fx\n' "nbdcopy to $([[ $k == copy_null ]] && echo null: || echo a file)" \
    "$(echo "$bytes / 1048576 / $c" | bc -l)" "$(echo "$bytes / 1048576 / $q" | bc -l)" "$(echo "$q / $c" | bc -l)"
  w="nbdcopy to $([[ $k == copy_null ]] && echo null: || echo a file)"
  tsv "$w" "cowdisk serve" "$(echo "$bytes / 1048576 / $c" | bc -l)" MiB/s higher
  tsv "$w" "qemu-nbd" "$(echo "$bytes / 1048576 / $q" | bc -l)" MiB/s higher
done
for k in read write; do
  c=$(m cowdisk $k) q=$(m qemu $k)
  printf '%-44s %11.0f /s %11.0f /s %9.2fx\n' "qemu-img bench 4 KiB $k, QD32" "$(echo "100000 / $c" | bc -l)" "$(echo "100000 / $q" | bc -l)" "$(echo "$q / $c" | bc -l)"
  tsv "qemu-img bench 4 KiB $k, QD32" "cowdisk serve" "$(echo "100000 / $c" | bc -l)" IOPS higher
  tsv "qemu-img bench 4 KiB $k, QD32" "qemu-nbd" "$(echo "100000 / $q" | bc -l)" IOPS higher
done
echo "(ratio: cowdisk's rate / qemu-nbd's; load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs, cowdisk $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo '?'))"
