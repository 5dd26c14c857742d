#!/usr/bin/env python3
"""The block-device section of bench/run: one fio sequence, in one caching mode, on several devices at once.

Phases, in this order, each on every device before the next phase starts (the order of the devices rotates from
phase to phase and round to round, so no subject always runs first or last):

  1. 4 KiB random write, QD32, on the fresh disk (allocating)   write: once, then a verify pass
  2. 1 MiB sequential write, QD8, filling the region             write: once, then a verify pass
  3. 4 KiB random read, QD32                                     read: ROUNDS timed runs, median
  4. 1 MiB sequential read, QD8, the whole region                read: ROUNDS runs, median
  5. 4 KiB random overwrite, QD32                                write: once, then a verify pass
  6. 4 KiB random read, QD1: IOPS and p50/p99 latency            read: ROUNDS timed runs, median
  7. the same QD1 reads beside a writer that fsyncs every 4 KiB   read: ROUNDS timed runs, median
     write (fsync=1, QD1): the reads' p50/p99 and the writer's rate. Set beside phase 6, it shows whether an
     fsync (what every journal commit of a file system sends) stalls unrelated I/O for its whole commit.

Writes use fio's random map (every block at most once per run), a fixed seed, --verify=crc32c with do_verify=0,
and end with an fsync of the device inside the timed figure (end_fsync=1), so no subject leaves dirty data to be
written back during another subject's run. A write stops after --write-runtime seconds or at the end of the region,
whichever comes first (not time_based: fio never verifies a time_based write). The verify pass is a second fio run
of the same job with --verify_only --number_ios=N (N = the writes the first run completed): fio regenerates the
same offsets and seeds and checks every block it wrote (header magic, offset, seed, crc32c). A pass that reports an
error, or that verified fewer blocks than were written, marks the subject FAILING.

With --drop-caches (the cache-off mode), `sync; echo 3 > /proc/sys/vm/drop_caches` runs before every read run and
every verify pass.

Output: one TSV line per figure appended to --out:
  section  mode  workload  subject  value  unit  better  status  note
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time

PHASES = [
    # name, rw, bs, iodepth, kind, seed
    ("randwrite 4k QD32, allocating (fresh disk)", "randwrite", "4k", 32, "write", 11),
    ("seqwrite 1M QD8 (fill)", "write", "1M", 8, "write", 12),
    ("randread 4k QD32", "randread", "4k", 32, "timed-read", 13),
    ("seqread 1M QD8", "read", "1M", 8, "size-read", 14),
    ("rand overwrite 4k QD32", "randwrite", "4k", 32, "write", 15),
    ("randread 4k QD1", "randread", "4k", 1, "timed-read", 16),
]

current = None   # the running fio, killed if we are


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def log(msg):
    print(f"[fio {args.mode}] {msg}", file=sys.stderr, flush=True)


def drop_caches():
    if args.drop_caches:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")


def fio(tag, device, extra):
    """Runs fio with JSON output; returns (rc, job dict or None, first error line)."""
    out = os.path.join(args.logdir, f"{tag}.json")
    err = os.path.join(args.logdir, f"{tag}.err")
    # verify_state_save=0: no *-verify.state files (fio writes them into its current folder, which is logdir anyway).
    rc = run_fio(["fio", f"--name={tag}", f"--filename={device}", "--ioengine=libaio", "--direct=1", "--group_reporting",
                  "--verify_state_save=0", "--output-format=json", f"--output={out}"] + extra, err)
    text = open(out).read() if os.path.exists(out) else ""
    start = text.find("{")
    job = None
    try:
        job = json.loads(text[start:])["jobs"][0]
    except (ValueError, KeyError, IndexError):
        pass
    # fio prints its complaints to stderr, and some (verify failures) before the JSON in the output file.
    lines = [l.strip() for l in (open(err).read() + "\n" + (text[:start] if start >= 0 else text)).splitlines() if l.strip()]
    first = next((l for l in lines if "verify" in l or "err=" in l or "error" in l.lower()), lines[0] if lines else "")
    if job is not None and job.get("error", 0) and not first:
        first = f"fio error {job['error']}"
    return rc, job, first


def run_fio(cmd, err):
    """Runs one fio command with its output to err; kills it if we are stopped. Returns its exit code."""
    global current
    with open(err, "w") as e:
        current = subprocess.Popen(cmd, stdout=e, stderr=subprocess.STDOUT, cwd=args.logdir)
        try:
            return current.wait()
        finally:
            if current.poll() is None:
                current.kill()
                current.wait()
            current = None


def emit(workload, subject, value, unit, better, status="ok", note=""):
    v = "" if value is None else f"{value:.6g}"
    with open(args.out, "a") as f:
        f.write("\t".join(["fio", args.mode, workload, subject, v, unit, better, status, note.replace("\t", " ")]) + "\n")


def rotated(items, k):
    k %= len(items)
    return items[k:] + items[:k]


def main():
    global args
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", required=True, help="label of the caching mode (cache on / cache off)")
    p.add_argument("--device", action="append", required=True, metavar="SUBJECT=DEVICE")
    p.add_argument("--region", default="1G")
    p.add_argument("--write-runtime", type=float, default=6, help="longest seconds of a 4 KiB write phase")
    p.add_argument("--read-runtime", type=float, default=2, help="seconds of each timed read run")
    p.add_argument("--rounds", type=int, default=3, help="runs of each read phase per subject (median)")
    p.add_argument("--drop-caches", action="store_true")
    p.add_argument("--out", required=True)
    p.add_argument("--logdir", required=True)
    args = p.parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    os.makedirs(args.logdir, exist_ok=True)
    subjects = [tuple(d.split("=", 1)) for d in args.device]
    failing = {}   # subject -> first verify error

    for pi, (name, rw, bs, depth, kind, seed) in enumerate(PHASES):
        unit = "IOPS" if bs == "4k" else "MiB/s"
        common = [f"--rw={rw}", f"--bs={bs}", f"--iodepth={depth}", f"--size={args.region}"]
        if kind == "write":
            results = {}
            for subject, device in rotated(subjects, pi):
                same = common + ["--randrepeat=1", f"--randseed={seed}", "--verify=crc32c"]
                wjob = same + ["--do_verify=0", "--end_fsync=1",
                               f"--runtime={int(args.write_runtime * (1 if bs == '4k' else 10) * 1000)}ms"]
                tag = f"{args.mode}-{pi}-{subject}".replace(" ", "_")
                rc, job, first = fio(tag + "-write", device, wjob)
                if rc != 0 or job is None or job.get("error"):
                    failing.setdefault(subject, f"{name}: write failed: {first}")
                    emit(name, subject, None, unit, "higher", "error", f"fio write failed: {first}")
                    log(f"{name}: {subject}: write FAILED: {first}")
                    continue
                w = job["write"]
                written = w["total_ios"]
                value = w["iops"] if unit == "IOPS" else w["bw_bytes"] / 2**20
                drop_caches()
                t0 = time.monotonic()
                # No runtime limit (fio stops verifying when the job's runtime is up) and no do_verify=0 (it turns verify_only
                # into a no-op that reports success): the same job, replayed as reads that check every block written.
                rc, vjob, vfirst = fio(tag + "-verify", device, same + ["--verify_only", f"--number_ios={written}"])
                verified = vjob["read"]["total_ios"] if vjob else 0
                ok = rc == 0 and vjob is not None and not vjob.get("error") and verified == written
                note = f"{written:,} writes; verified {verified:,} in {time.monotonic() - t0:.1f} s"
                if not ok:
                    why = vfirst or f"verified {verified} of {written} blocks"
                    failing.setdefault(subject, f"{name}: {why}")
                    note += f"; VERIFY FAILED: {why}"
                emit(name, subject, value, unit, "higher", "ok" if ok else "FAILING", note)
                log(f"{name}: {subject}: {value:,.0f} {unit} ({note})")
        else:
            runs = {s: [] for s, _ in subjects}
            lat = {s: ([], []) for s, _ in subjects}
            errors = {}
            for r in range(args.rounds):
                for subject, device in rotated(subjects, pi + r):
                    extra = common + ["--randrepeat=0"]
                    if kind == "timed-read":
                        extra += ["--time_based", f"--runtime={int(args.read_runtime * 1000)}ms", "--norandommap"]
                    else:
                        extra += [f"--runtime={int(args.write_runtime * 10 * 1000)}ms"]
                    if depth == 1:
                        extra += ["--lat_percentiles=1", "--percentile_list=50:99"]
                    drop_caches()
                    tag = f"{args.mode}-{pi}-{subject}-r{r}".replace(" ", "_")
                    rc, job, first = fio(tag, device, extra)
                    if rc != 0 or job is None or job.get("error"):
                        errors[subject] = first
                        log(f"{name}: {subject}: read FAILED: {first}")
                        continue
                    rd = job["read"]
                    runs[subject].append(rd["iops"] if unit == "IOPS" else rd["bw_bytes"] / 2**20)
                    if depth == 1:
                        pct = (rd.get("lat_ns") or {}).get("percentile") or rd["clat_ns"].get("percentile", {})
                        lat[subject][0].append(pct.get("50.000000", 0) / 1000)
                        lat[subject][1].append(pct.get("99.000000", 0) / 1000)
            for subject, _ in subjects:
                if not runs[subject]:
                    emit(name, subject, None, unit, "higher", "error", f"fio read failed: {errors.get(subject, '')}")
                    continue
                m = statistics.median(runs[subject])
                note = f"median of {len(runs[subject])}: " + ", ".join(f"{x:,.0f}" for x in runs[subject])
                emit(name, subject, m, unit, "higher", "ok", note)
                log(f"{name}: {subject}: {m:,.0f} {unit} ({note})")
                if depth == 1:
                    emit(f"{name}: p50 latency", subject, statistics.median(lat[subject][0]), "us", "lower", "ok",
                         "fio lat (submit to completion), median of runs")
                    emit(f"{name}: p99 latency", subject, statistics.median(lat[subject][1]), "us", "lower", "ok",
                         "fio lat (submit to completion), median of runs")

    beside_fsync(subjects)
    for subject, why in failing.items():
        emit("*", subject, None, "", "", "FAILING", why)
    return 0


STALL = "randread 4k QD1 beside an fsync-per-write writer"


def beside_fsync(subjects):
    """Phase 7: two jobs on one device at once; options before the first --name apply to both."""
    pi = len(PHASES)
    got = {s: ([], [], []) for s, _ in subjects}
    for r in range(args.rounds):
        for subject, device in rotated(subjects, pi + r):
            drop_caches()
            tag = f"{args.mode}-{pi}-{subject}-r{r}".replace(" ", "_")
            out = os.path.join(args.logdir, f"{tag}.json")
            cmd = ["fio", f"--filename={device}", "--ioengine=libaio", "--direct=1", f"--size={args.region}", "--bs=4k",
                   "--iodepth=1", "--time_based", f"--runtime={int(args.read_runtime * 1000)}ms", "--norandommap",
                   "--randrepeat=0", "--lat_percentiles=1", "--percentile_list=50:99", "--verify_state_save=0",
                   "--output-format=json", f"--output={out}",
                   "--name=reader", "--rw=randread", "--name=syncer", "--rw=randwrite", "--fsync=1"]
            rc = run_fio(cmd, os.path.join(args.logdir, f"{tag}.err"))
            try:
                text = open(out).read()
                jobs = json.loads(text[text.find("{"):])["jobs"]
                rd, wr = jobs[0]["read"], jobs[1]["write"]
                pct = (rd.get("lat_ns") or {}).get("percentile") or rd["clat_ns"].get("percentile", {})
            except (OSError, ValueError, KeyError, IndexError):
                log(f"{STALL}: {subject}: fio failed (rc {rc})")
                continue
            got[subject][0].append(pct.get("50.000000", 0) / 1000)
            got[subject][1].append(pct.get("99.000000", 0) / 1000)
            got[subject][2].append(wr["iops"])
    for subject, _ in subjects:
        p50, p99, syncs = got[subject]
        if not p99:
            emit(f"{STALL}: p99 latency", subject, None, "us", "lower", "error", "fio failed")
            continue
        note = f"median of {len(p99)}"
        emit(f"{STALL}: p50 latency", subject, statistics.median(p50), "us", "lower", "ok", note)
        emit(f"{STALL}: p99 latency", subject, statistics.median(p99), "us", "lower", "ok", note)
        emit(f"{STALL}: the writer's fsync'd writes", subject, statistics.median(syncs), "IOPS", "higher", "ok", note)
        log(f"{STALL}: {subject}: p99 {statistics.median(p99):,.0f} us, {statistics.median(syncs):,.0f} fsync'd writes/s")


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        if current is not None and current.poll() is None:
            current.kill()
            current.wait()
