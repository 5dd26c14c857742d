#!/usr/bin/env python3
"""Turns what bench/run measured into one table (printed, and written as Markdown) and one SVG chart.

Inputs: the TSV every section appended to (section, mode, workload, subject, value, unit, better, status, note),
the JSON of bench/CowDisk.Bench (snapshots and engine sections), and a facts file (key<TAB>value lines: commit,
date, load, machine, settings, notes). Python standard library only.
"""
import argparse
import html
import json
import math
import statistics

# Section order, title, and which subject is cowdisk / the peer / the limit in each.
SECTIONS = [
    ("fio:cache on", "1. Block device, host page cache on (fio, direct I/O on the device)"),
    ("fio:cache off", "1. Block device, host page cache off (O_DIRECT on the backing file, caches dropped before reads)"),
    ("ceiling", "1b. The FUSE ceiling: a FUSE server that does no work, 4 KiB QD32 and 1 MiB QD8, page cache on (bench/ceiling/nullfuse.c)"),
    ("copy", "2. A user's copy: cp -a of a tree onto a fresh ext4, then sync (page cache on)"),
    ("nbd", "3. NBD: cowdisk serve vs qemu-nbd (qcow2)"),
    ("snap", "4. Snapshots: cowdisk vs qcow2 (qemu-img / qemu-io)"),
    ("engine", "5. Engine internals (CowImage API; limit = a plain pread of the same blocks of the data file)"),
    ("convert", "6. Convert: cowdisk convert vs qemu-img convert"),
]
SUBJECTS = {   # section -> role -> subject name as the sections write it
    "fio": {"cow": "cowdisk attach", "peer": "qsd FUSE+loop", "limit": "raw loop", "uring": "cowdisk attach --io-uring"},
    "ceiling": {"cow": "cowdisk", "peer": "zero-work FUSE server", "limit": "raw loop"},
    "copy": {"cow": "cowdisk attach", "peer": "qsd FUSE+loop", "limit": "raw loop"},
    "nbd": {"cow": "cowdisk serve", "peer": "qemu-nbd"},
    "snap": {"cow": "cowdisk", "peer": "qcow2"},
    "engine": {"cow": "engine", "limit": "plain pread"},
    "convert": {"cow": "cowdisk convert", "peer": "qemu-img convert"},
}
PEER_LABEL = {"ceiling": "zero-work server"}   # the chart's name for the peer; qemu elsewhere
REFERENCE = {"ceiling": "limit", "fio": "limit", "copy": "limit", "engine": "limit", "nbd": "peer", "snap": "peer", "convert": "peer"}


def base_of(key):
    return key.split(":")[0]


def role_of(key, subject):
    return next((r for r, s in SUBJECTS.get(base_of(key), {}).items() if s == subject), subject)


class Row:
    def __init__(self, key, workload, unit, better):
        self.key, self.workload, self.unit, self.better = key, workload, unit, better
        self.cells = {}      # role -> (value or None, status, note)

    def ratio(self, a, b):
        """Speed of role a relative to role b (>1: a is faster / better), or None (also for rows that are ratios)."""
        if self.unit == "x":
            return None
        ca, cb = self.cells.get(a), self.cells.get(b)
        if not ca or not cb or ca[1] != "ok" or cb[1] != "ok" or not ca[0] or not cb[0]:
            return None
        return ca[0] / cb[0] if self.better == "higher" else cb[0] / ca[0]


def fmt(v, unit):
    if v is None:
        return ""
    if unit in ("IOPS", "/s", "ops/s", "ext/s"):
        return f"{v:,.0f}"
    if unit in ("MiB/s", "MB/s"):
        return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"
    if unit == "s":
        return f"{v:.2f}" if v >= 0.1 else f"{v:.3f}"
    if unit in ("ms", "us", "MiB"):
        return f"{v:,.1f}" if abs(v) >= 10 else f"{v:.2f}"
    if unit == "x":
        return f"{v:.2f}"
    return f"{v:.4g}"


def load_tsv(path, rows, subject_state):
    try:
        lines = open(path).read().splitlines()
    except FileNotFoundError:
        return
    for line in lines:
        parts = line.split("\t")
        if len(parts) < 9:
            parts += [""] * (9 - len(parts))
        section, mode, workload, subject, value, unit, better, status, note = parts[:9]
        key = f"{section}:{mode}" if section == "fio" else section
        if workload == "*":   # a whole subject in this section: not available, FAILING
            subject_state[(key, subject)] = (status, note)
            continue
        row = rows.setdefault((key, workload), Row(key, workload, unit, better or "higher"))
        role = role_of(key, subject)
        row.cells[role] = (float(value) if value else None, status or "ok", note)


def load_bench(path, rows):
    try:
        doc = json.load(open(path))
    except (FileNotFoundError, ValueError):
        return None
    tag = ""   # a --quick run says so in the header

    def add(key, workload, unit, better, cow=None, peer=None, limit=None, note=""):
        row = rows.setdefault((key, workload), Row(key, workload, unit, better))
        for role, v in (("cow", cow), ("peer", peer), ("limit", limit)):
            if v is not None:
                row.cells[role] = (v, "ok", note)

    for r in doc.get("rows", []):
        sec, name, thr = r["section"], r["name"], r["threads"]
        if sec.startswith("1.") and r["kind"] == "engine":
            what = {"read 4K, cache off": "map requests through the ring, cache off (every 4 KiB read asks)",
                    "read 4K, cache on, first touch": "cache on, first touch (every read a miss)",
                    "read 4K, cache on, steady": "cache on, steady (hits, no ring call)"}.get(name, name)
            base = r.get("baseline_rate")
            add("engine", f"{what}, {thr} thr{tag}", "ops/s", "higher", cow=r["rate"], limit=base)
    opens_rw = [r for r in doc.get("rows", []) if r["section"].startswith("4.") and r["name"].startswith("open read-write")]
    opens_ro = [r for r in doc.get("rows", []) if r["section"].startswith("4.") and r["name"] == "open read-only"]
    build = [r for r in doc.get("rows", []) if r["section"].startswith("4.") and r["name"].startswith("build")]
    if opens_rw:
        n = opens_rw[0]["ops"]
        secs = [r["seconds"] for r in opens_rw]
        add("engine", f"open an image of {n:,} extents, read-write (median of {len(secs)}){tag}", "s", "lower", cow=statistics.median(secs))
        add("engine", f"  managed heap the open image keeps (after a full GC){tag}", "MiB", "lower", cow=opens_rw[0]["heap_retained_mib"])
        add("engine", f"  RSS of the benchmark process after that open (with what the build left){tag}", "MiB", "lower", cow=opens_rw[0]["rss_mib"])
    procs = {r["name"]: r for r in doc.get("rows", []) if r["section"].startswith("4.") and r["name"].startswith("a new process")}
    full = next((r for k, r in procs.items() if k.endswith("this image")), None)
    empty = next((r for k, r in procs.items() if k.endswith("empty image")), None)
    if full:
        add("engine", f"  a new process opens it: `cowdisk io IMAGE read 0 4096`, whole command{tag}", "s", "lower", cow=full["seconds"])
        add("engine", f"  peak RSS of that process{tag}", "MiB", "lower", cow=full["rss_mib"])
    if empty:
        add("engine", f"  peak RSS of the same command on an empty image{tag}", "MiB", "lower", cow=empty["rss_mib"])
    if opens_ro:
        add("engine", f"open it read-only{tag}", "s", "lower", cow=opens_ro[0]["seconds"])
    if build:
        add("engine", f"build it: {build[0]['ops']:,} allocating 4 KiB writes, 16 threads, one flush{tag}", "ops/s", "higher", cow=build[0]["rate"])
    for f in doc.get("snapshots") or []:
        unit = f["unit"]
        better = "higher" if unit in ("MiB/s", "/s") else "lower"
        add("snap", f["what"] + tag, unit, better, cow=f["cowdisk"], peer=f["qcow2"])
    return doc


def state(subject_state, key, role):
    """'n/a', 'FAILING', 'error' or '' for the subject playing `role` in section `key`."""
    subject = SUBJECTS.get(base_of(key), {}).get(role)
    st = subject_state.get((key, subject))
    return (st[0], st[1]) if st else ("", "")


def cell(row, role, subject_state):
    st, _ = state(subject_state, row.key, role)
    if st == "n/a":
        return "n/a", None
    c = row.cells.get(role)
    if c is None:
        return "", None
    v, status, _ = c
    if status == "FAILING" or st == "FAILING":
        return "FAILING", None
    if status != "ok":
        return status, None
    return fmt(v, row.unit), v


def ratio(row, a, b, subject_state):
    if any(state(subject_state, row.key, r)[0] in ("n/a", "FAILING") for r in (a, b)):
        return None
    return row.ratio(a, b)


def sections(rows):
    for key, title in SECTIONS:
        srows = [r for (k, _), r in rows.items() if k == key]
        if srows:
            yield key, title, srows


def targets(rows, subject_state):
    """The targets of issues 10 and 11, each judged from this run's rows: (target, figure, verdict) lines.
    A target whose rows this run did not measure (a section left out, a subject n/a) says so instead."""
    out = []

    def ratios(key, a, b, pick=lambda r: True):
        found = []
        for (k, _), r in rows.items():
            if k == key and pick(r):
                x = ratio(r, a, b, subject_state)
                if x is not None:
                    found.append((r.workload.strip(), x))
        return found

    def judge(name, found, at_least, show_all=False):
        if not found:
            out.append((name, "not measured in this run", "-"))
            return
        misses = [(w, x) for w, x in found if x < at_least]
        low = min(found, key=lambda f: f[1])
        if show_all:
            figure = "; ".join(f"{w} {x:.2f}x" for w, x in found)
        elif misses:
            figure = f"{len(found) - len(misses)} of {len(found)} rows; below: " + "; ".join(f"{w} {x:.2f}x" for w, x in misses)
        else:
            figure = f"all {len(found)} rows; least {low[0]} {low[1]:.2f}x"
        out.append((name, figure, "met" if not misses else "not met"))

    is_4k = lambda r: "4k" in r.workload and r.unit in ("IOPS", "us")
    is_seq = lambda r: r.workload.startswith(("seqwrite", "seqread"))
    is_qd32_rw = lambda r: "4k QD32" in r.workload and r.unit == "IOPS"
    for mode in ("cache on", "cache off"):
        judge(f"10: every fio workload, cowdisk >= 1.5x qsd (page {mode})", ratios(f"fio:{mode}", "cow", "peer"), 1.5)
    judge("10: the copy, cowdisk >= 1.5x qsd", ratios("copy", "cow", "peer"), 1.5, show_all=True)
    for mode in ("cache on", "cache off"):
        judge(f"10: 4k random I/O, cowdisk >= 0.9x the raw loop (page {mode})", ratios(f"fio:{mode}", "cow", "limit", is_4k), 0.9)
    judge("10: sequential I/O, page cache off, cowdisk >= 1.0x the raw loop", ratios("fio:cache off", "cow", "limit", is_seq), 1.0, show_all=True)
    judge("10: NBD copy (nbdcopy), cowdisk serve >= 1.0x qemu-nbd", ratios("nbd", "cow", "peer", lambda r: r.workload.startswith("nbdcopy")), 1.0, show_all=True)
    judge("10: convert, cowdisk >= 1.0x qemu-img", ratios("convert", "cow", "peer"), 1.0, show_all=True)
    judge("10: engine, mapping cache hits >= 0.95x pread (1 and 4 threads)", ratios("engine", "cow", "limit", lambda r: r.workload.startswith("cache on, steady")), 0.95, show_all=True)
    judge("10: engine, mapping cache off >= 0.5x pread (1 and 4 threads)", ratios("engine", "cow", "limit", lambda r: r.workload.startswith("map requests")), 0.5, show_all=True)
    opens = [r for (k, _), r in rows.items() if k == "engine" and r.workload.startswith("open an image of")]
    heap = [r for (k, _), r in rows.items() if k == "engine" and r.workload.strip().startswith("managed heap the open image keeps")]
    if opens and heap and opens[0].cells.get("cow") and heap[0].cells.get("cow"):
        t, m = opens[0].cells["cow"][0], heap[0].cells["cow"][0]
        n = opens[0].workload.split(" extents")[0].replace("open an image of ", "")
        full = n == "1,000,000"
        out.append(("10: open an image of 1,000,000 extents in < 0.5 s and < 64 MiB added memory",
                    f"{t:.3f} s, {m:.1f} MiB of managed heap kept ({n} extents)",
                    ("met" if t < 0.5 and m < 64 else "not met") if full else "not judged (a smaller image: --quick)"))
    else:
        out.append(("10: open an image of 1,000,000 extents in < 0.5 s and < 64 MiB added memory", "not measured in this run", "-"))
    # What no FUSE server can beat here: the ceiling section's zero-work server against the raw loop and against us.
    ceiling = {r.workload.strip(): r for (k, _), r in rows.items() if k == "ceiling"}
    if ceiling:
        out.append(("10, 11 context: a zero-work FUSE server / the raw loop (page cache on)",
                    "; ".join(f"{w} {x:.2f}x" for w, r in ceiling.items() if (x := ratio(r, "peer", "limit", subject_state)) is not None) or "-",
                    "the ceiling"))
        out.append(("10, 11 context: cowdisk / the zero-work server, same transport",
                    "; ".join(f"{w} {x:.2f}x" for w, r in ceiling.items() if (x := ratio(r, "cow", "peer", subject_state)) is not None) or "-",
                    "-"))

        def uring_server_over(fuse_role):   # the zero-work io_uring server's rate / the /dev/fuse row's fuse_role, per workload
            found = []
            for w in ("randread 4k QD32", "randwrite 4k QD32 (overwrite)", "seqread 1M QD8", "seqwrite 1M QD8 (overwrite)"):
                fuse, uring = ceiling.get(f"{w}, over /dev/fuse"), ceiling.get(f"{w}, over io_uring")
                num = uring.cells.get("peer") if uring else None
                den = fuse.cells.get(fuse_role) if fuse else None
                if num and den and num[0] and den[0]:
                    found.append(f"{w} {num[0] / den[0]:.2f}x")
            return "; ".join(found)

        for role, name in (("cow", "11 context: a zero-work io_uring server / cowdisk over /dev/fuse (ceiling section's runs)"),
                           ("peer", "11 context: zero-work io_uring / zero-work /dev/fuse (the transports alone, the same work)")):
            if figure := uring_server_over(role):
                out.append((name, figure, "-"))
    for mode in ("cache on", "cache off"):
        judge(f"11: io_uring >= 1.3x /dev/fuse, 4k random read and write QD32 (page {mode})", ratios(f"fio:{mode}", "uring", "cow", is_qd32_rw), 1.3, show_all=True)
        judge(f"11: io_uring no slower than /dev/fuse on any workload (page {mode})", ratios(f"fio:{mode}", "uring", "cow"), 1.0)
    return out


def render(rows, subject_state, facts):
    header = ["workload", "unit", "cowdisk", "peer", "limit", "cow/peer", "cow/limit", "peer/limit", "io_uring", "uring/cow"]
    body = []
    for key, title, srows in sections(rows):
        names = SUBJECTS[base_of(key)]
        who = "; ".join(f"{role}: {names[role]}" for role in ("cow", "peer", "limit", "uring") if role in names)
        body.append(("title", f"{title}  ({who})"))
        for r in srows:
            cells = [r.workload, r.unit] + [cell(r, role, subject_state)[0] for role in ("cow", "peer", "limit")]
            for a, b in (("cow", "peer"), ("cow", "limit"), ("peer", "limit")):
                x = ratio(r, a, b, subject_state)
                cells.append(f"{x:.2f}x" if x is not None else "")
            # cowdisk attach with FUSE over io_uring, beside the /dev/fuse transport (fio only)
            cells.append(cell(r, "uring", subject_state)[0] if "uring" in names else "")
            x = ratio(r, "uring", "cow", subject_state) if "uring" in names else None
            cells.append(f"{x:.2f}x" if x is not None else "")
            body.append(("row", cells))
    widths = [len(h) for h in header]
    for kind, cells in body:
        if kind == "row":
            widths = [max(w, len(c)) for w, c in zip(widths, cells)]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    rule = "|" + "|".join("-" * (w + 2) if i < 2 else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|"
    table_lines = []
    for kind, item in body:
        if kind == "title":
            table_lines += ["", f"**{item}**", "", line(header), rule]
        else:
            table_lines.append(line(item))

    f = facts
    md = [f"# CowDisk bench/run{' (' + f['run'] + ')' if f.get('run') else ''}", "", "```"]
    for k in ["commit", "date (UTC)", "wall time", "sections", "load before", "load after", "cpu", "memory", "kernel",
              "os", "work folder", "file system", "disk", "tools", "sizes"]:
        if k in f:
            md.append(f"{k:<12} {f[k]}")
    md += ["```", ""]
    md.append("Ratios are speed ratios between two subjects of the same row (same caching mode, same run): above 1 = "
              "the first is faster; for times and latencies, the second's time ÷ the first's. A subject that failed "
              "data verification is FAILING and gets no ratio; n/a = it could not be set up in that mode. "
              "Reasons for both are under *Not ranked*.")
    md += table_lines
    md.append("")
    judged = targets(rows, subject_state)
    if judged:
        w = [max(len(t[i]) for t in judged + [("target", "figure", "verdict")]) for i in range(3)]
        md += ["**Targets** (issues 10 and 11; judged from this run's rows, ratios as above)", "",
               "| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(("target", "figure", "verdict"))) + " |",
               "|" + "|".join("-" * (x + 2) for x in w) + "|"]
        md += ["| " + " | ".join(c.ljust(w[i]) for i, c in enumerate(t)) + " |" for t in judged]
        md.append("")
    state_lines = [f"- **{subject}, {key.replace('fio:', 'block device, ')}: {st}**: {note}"
                   for (key, subject), (st, note) in sorted(subject_state.items()) if st in ("FAILING", "n/a", "error")]
    if state_lines:
        md += ["**Not ranked**", ""] + state_lines + [""]
    notes = [v for k, v in sorted(f.items()) if k.startswith("note")]
    if notes:
        md += ["**Notes**", ""] + [f"- {n}" for n in notes] + [""]
    md.append("Chart: `latest.svg` beside this file. Made by `bench/run` (see docs/BENCHMARKS.md).")
    return "\n".join(md) + "\n"


def svg(rows, subject_state, facts):
    # Bars per row: block device and copy: cowdisk and qemu relative to the raw loop; NBD, snapshots, convert: cowdisk
    # relative to qemu; engine: cowdisk relative to a plain pread of the same blocks. A subject that is FAILING or n/a is named instead.
    items = []
    for key, title, srows in sections(rows):
        base = base_of(key)
        ref = REFERENCE[base]
        series = [("cowdisk", "cow")] + ([(PEER_LABEL.get(base, "qemu"), "peer")] if ref == "limit" and "peer" in SUBJECTS[base] else [])
        rowitems = []
        for r in srows:
            if ref not in r.cells:
                continue
            bars = []
            for name, role in series:
                st, _ = state(subject_state, key, role)
                text, v = cell(r, role, subject_state)
                if st in ("n/a", "FAILING") or text in ("FAILING", "error"):
                    bars.append((name, None, st or text))
                elif v is not None:
                    x = ratio(r, role, ref, subject_state)
                    if x is not None:
                        bars.append((name, x, ""))
            if bars:
                rowitems.append((r.workload.strip(), bars))
        if rowitems:
            items.append(("title", title.split("  (")[0] + f"  (reference: {SUBJECTS[base][ref]})"))
            items += [("row", label, bars) for label, bars in rowitems]
    ratios = [x for it in items if it[0] == "row" for _, x, _ in it[2] if x]
    lo = 10 ** math.floor(math.log10(min(ratios + [0.5]) / 1.05))
    hi = 10 ** math.ceil(math.log10(max(ratios + [2]) * 1.05))
    W, label_w, right = 1200, 560, 60
    x0, x1 = label_w + 12, W - right
    bar_h, gap = 10, 3

    def X(v):
        return x0 + (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * (x1 - x0)

    colors = {"cowdisk": "#2f6db5", "qemu": "#e08a2c", "zero-work server": "#8a8a8a"}
    y, parts = 88, []
    for it in items:
        if it[0] == "title":
            y += 12
            parts.append(f'<text x="10" y="{y + 12}" class="h">{html.escape(it[1])}</text>')
            y += 20
            continue
        _, label, bars = it
        h = len(bars) * (bar_h + gap) + 3
        parts.append(f'<text x="{label_w}" y="{y + h / 2 + 3:.1f}" text-anchor="end" class="l">{html.escape(label[:95])}</text>')
        by = y + 1
        for name, x, status in bars:
            if x is None:
                cls = "na" if status == "n/a" else "f"
                parts.append(f'<text x="{X(1) + 4:.1f}" y="{by + bar_h - 1}" class="{cls}">{name}: {html.escape(status)}</text>')
            else:
                a, b = sorted((X(1), X(x)))
                parts.append(f'<rect x="{a:.1f}" y="{by}" width="{max(b - a, 1.5):.1f}" height="{bar_h}" fill="{colors[name]}">'
                             f'<title>{name}: {x:.2f}x</title></rect>')
                tx, anchor = (b + 3, "start") if x >= 1 else (a - 3, "end")
                parts.append(f'<text x="{tx:.1f}" y="{by + bar_h - 1}" text-anchor="{anchor}" class="v">{x:.2f}×</text>')
            by += bar_h + gap
        y += h
    H = y + 36
    grid, d = [], lo
    while d <= hi * 1.0001:
        for m in (1, 2, 5):
            v = d * m
            if v <= hi * 1.0001:
                gx = X(v)
                grid.append(f'<line x1="{gx:.1f}" y1="80" x2="{gx:.1f}" y2="{H - 28}" class="{"one" if abs(v - 1) < 1e-9 else "g"}"/>')
                grid.append(f'<text x="{gx:.1f}" y="76" text-anchor="middle" class="t">{v:g}×</text>')
                grid.append(f'<text x="{gx:.1f}" y="{H - 14}" text-anchor="middle" class="t">{v:g}×</text>')
        d *= 10
    sub = (f"commit {facts.get('commit', '?').split()[0]} · {facts.get('date (UTC)', '?')} UTC · load {facts.get('load before', '?')} → "
           f"{facts.get('load after', '?')} · {facts.get('cpu', '')}")
    run = (facts["run"] + " · ") if facts.get("run") else ""
    head = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="DejaVu Sans, Verdana, sans-serif">',
        '<style>.h{font-size:13px;font-weight:bold;fill:#222}.l{font-size:11px;fill:#333}.v{font-size:10px;fill:#222}'
        '.t{font-size:10px;fill:#777}.f{font-size:10px;fill:#b00020;font-weight:bold}.na{font-size:10px;fill:#888}.g{stroke:#e6e6e6;stroke-width:1}'
        '.one{stroke:#222;stroke-width:1.5}</style>',
        f'<rect width="{W}" height="{H}" fill="#fff"/>',
        f'<text x="10" y="22" font-size="16" font-weight="bold">CowDisk bench/run: speed relative to the reference (log scale; right of 1× = faster)</text>',
        f'<text x="10" y="40" class="l">{html.escape(run + sub)}</text>',
        f'<rect x="10" y="50" width="12" height="10" fill="{colors["cowdisk"]}"/><text x="26" y="59" class="l">cowdisk (attach, serve, convert, engine)</text>',
        f'<rect x="290" y="50" width="12" height="10" fill="{colors["qemu"]}"/><text x="306" y="59" class="l">qemu-storage-daemon FUSE export of qcow2 + loop</text>',
        f'<rect x="640" y="50" width="12" height="10" fill="{colors["zero-work server"]}"/><text x="656" y="59" class="l">a FUSE server that does no work (1b)</text>',
        f'<text x="900" y="59" class="l">references: raw loop · qemu-nbd / qcow2 /</text>',
        f'<text x="900" y="72" class="l">qemu-img · plain pread</text>',
    ]
    return "\n".join(head + grid + parts + ["</svg>"]) + "\n"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tsv", required=True)
    p.add_argument("--bench-json")
    p.add_argument("--facts", required=True)
    p.add_argument("--md", required=True)
    p.add_argument("--svg", required=True)
    args = p.parse_args()
    facts = {}
    for line in open(args.facts).read().splitlines():
        if "\t" in line:
            k, v = line.split("\t", 1)
            facts[k] = v
    rows, subject_state = {}, {}
    load_tsv(args.tsv, rows, subject_state)
    if args.bench_json:
        load_bench(args.bench_json, rows)
    md = render(rows, subject_state, facts)
    open(args.md, "w").write(md)
    open(args.svg, "w").write(svg(rows, subject_state, facts))
    print(md)


if __name__ == "__main__":
    main()
