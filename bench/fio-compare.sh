#!/usr/bin/env bash
# Compares `cowdisk attach` with qemu-storage-daemon's FUSE export of a qcow2 image and with a raw file, each
# on a loop device with direct I/O, under the same fio sequence on a fresh disk. Needs root, fio, qemu-img,
# qemu-storage-daemon, losetup and python3.
#
#   bench/fio-compare.sh                 # 1 GiB region, 10 s per timed job
#   REGION=4G RUNTIME=30 bench/fio-compare.sh
#
# Settings (environment): COWDISK (the cowdisk executable; default: the Release, then Debug build), REGION (test
# region and image size, default 1G), RUNTIME (seconds per timed job, default 10), WORKDIR (default: a new
# folder under /var/tmp), FUSE_THREADS (cowdisk --fuse-threads, default 8).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
REGION=${REGION:-1G}
RUNTIME=${RUNTIME:-10}
FUSE_THREADS=${FUSE_THREADS:-8}
if [[ -z "${COWDISK:-}" ]]; then
  for c in "$here/bench/.install/bin/cowdisk" "$here/src/Cli/bin/Release/net10.0/cowdisk" "$here/src/Cli/bin/Debug/net10.0/cowdisk"; do
    [[ -x "$c" ]] && COWDISK=$c && break
  done
fi
die() { echo "fio-compare: $*" >&2; exit 1; }
[[ $EUID -eq 0 ]] || die "must run as root (loop devices, FUSE)"
[[ -x "${COWDISK:-}" ]] || die "no cowdisk executable (build it, or set COWDISK)"
for tool in fio qemu-img qemu-storage-daemon losetup python3; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done

WORKDIR=${WORKDIR:-$(mktemp -d /var/tmp/fio-compare.XXXXXX)}
mkdir -p "$WORKDIR"
name="fio-compare-$$"
qemu_loop="" raw_loop="" qsd_pid=""

cleanup() {
  set +e
  "$COWDISK" detach "$name" >/dev/null 2>&1
  [[ -n "$qemu_loop" ]] && losetup -d "$qemu_loop"
  [[ -n "$raw_loop" ]] && losetup -d "$raw_loop"
  if [[ -n "$qsd_pid" ]]; then kill "$qsd_pid" 2>/dev/null; wait "$qsd_pid" 2>/dev/null; fi
  mountpoint -q "$WORKDIR/qemu.export" && umount -l "$WORKDIR/qemu.export"
  rm -rf "$WORKDIR"
}
trap cleanup EXIT INT TERM

echo "preparing devices in $WORKDIR (region $REGION, $RUNTIME s per timed job)" >&2
"$COWDISK" create "$WORKDIR/cowdisk.img" --size "$REGION" >/dev/null
cowdisk_dev=$("$COWDISK" attach "$WORKDIR/cowdisk.img" --name "$name" --fuse-threads "$FUSE_THREADS" | grep '^/dev/loop')

qemu-img create -q -f qcow2 -o cluster_size=65536 "$WORKDIR/qemu.qcow2" "$REGION"
touch "$WORKDIR/qemu.export"
qemu-storage-daemon \
  --blockdev "driver=file,node-name=file0,filename=$WORKDIR/qemu.qcow2" \
  --blockdev "driver=qcow2,node-name=disk0,file=file0" \
  --export "type=fuse,id=export0,node-name=disk0,mountpoint=$WORKDIR/qemu.export,writable=on" &
qsd_pid=$!
for _ in $(seq 100); do mountpoint -q "$WORKDIR/qemu.export" && break; sleep 0.1; done
mountpoint -q "$WORKDIR/qemu.export" || die "qemu-storage-daemon did not export $WORKDIR/qemu.export"
qemu_loop=$(losetup --direct-io=on -f --show "$WORKDIR/qemu.export")

truncate -s "$REGION" "$WORKDIR/raw.img"
raw_loop=$(losetup --direct-io=on -f --show "$WORKDIR/raw.img")

echo "devices: cowdisk=$cowdisk_dev qemu=$qemu_loop raw=$raw_loop" >&2
losetup --list -O NAME,DIO,BACK-FILE | grep -E "NAME|$WORKDIR|/run/cowdisk/$name" >&2

# name:rw:bs:iodepth:timed
jobs=(
  "randwrite-4k-qd32:randwrite:4k:32:timed"
  "seqwrite-1m-qd8:write:1m:8:fill"
  "randread-4k-qd32:randread:4k:32:timed"
  "seqread-1m-qd8:read:1m:8:fill"
  "randoverwrite-4k-qd32:randwrite:4k:32:timed"
)

results="$WORKDIR/results.tsv"
: > "$results"
run_job() { # device label job
  local device=$1 label=$2 spec=$3
  IFS=: read -r job rw bs depth mode <<< "$spec"
  local extra=()
  if [[ $mode == timed ]]; then extra=(--time_based --runtime="$RUNTIME"); else extra=(--runtime=$((RUNTIME * 6))); fi
  fio --name="$job" --filename="$device" --rw="$rw" --bs="$bs" --iodepth="$depth" --ioengine=libaio --direct=1 \
      --size="$REGION" --randrepeat=0 --norandommap --group_reporting --output-format=json "${extra[@]}" \
      > "$WORKDIR/$label-$job.json"
  python3 - "$WORKDIR/$label-$job.json" "$label" "$job" >> "$results" <<'PY'
import json, sys
job = json.load(open(sys.argv[1]))["jobs"][0]
side = job["write"] if job["write"]["io_bytes"] > 0 else job["read"]
print(f"{sys.argv[2]}\t{sys.argv[3]}\t{side['iops']:.0f}\t{side['bw_bytes'] / 1e6:.1f}")
PY
}

# Device by device, each through the whole sequence on its fresh disk.
for pair in "cowdisk:$cowdisk_dev" "qemu:$qemu_loop" "raw:$raw_loop"; do
  label=${pair%%:*} device=${pair#*:}
  for spec in "${jobs[@]}"; do
    echo "  $label ${spec%%:*}" >&2
    run_job "$device" "$label" "$spec"
  done
done

python3 - "$results" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    label, job, iops, mbs = line.rstrip("\n").split("\t")
    rows.setdefault(job, {})[label] = (float(iops), float(mbs))
print(f"{'workload':<24}{'cowdisk IOPS':>13}{'MB/s':>9}{'qemu IOPS':>11}{'MB/s':>9}{'raw IOPS':>10}{'MB/s':>9}"
      f"{'cow/qemu':>10}{'cow/raw':>9}")
for job, by in rows.items():
    c, q, r = by["cowdisk"], by["qemu"], by["raw"]
    ratio = lambda a, b: f"{a / b:.2f}x" if b else "-"
    print(f"{job:<24}{c[0]:>13.0f}{c[1]:>9.1f}{q[0]:>11.0f}{q[1]:>9.1f}{r[0]:>10.0f}{r[1]:>9.1f}"
          f"{ratio(c[0], q[0]):>10}{ratio(c[0], r[0]):>9}")
PY
