#!/usr/bin/env bash
# Builds the format-compatibility fixtures in this folder with the repository's own CLI.
#
#   images/make-fixtures.sh                      # builds src/Cli (Release) into a temp folder and uses it
#   COWDISK=/path/to/cowdisk images/make-fixtures.sh   # uses an already built binary instead
#
# The contents are deterministic: every byte each image reads as, and which blocks are allocated, are the
# same on every run. Image ids and creation times (in the .meta.db files) differ from run to run.
# images/README.md lists what each fixture must read as; tests/CowDisk.Tests/Fixtures/FixtureImageTests.cs
# checks it. Re-running replaces the fixtures: commit the result only when the format is meant to change.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [[ -z "${COWDISK:-}" ]]; then
    echo "building the CLI (Release) ..." >&2
    dotnet build "$root/src/Cli" -c Release -o "$work/cli" --nologo -v quiet >&2
    COWDISK="$work/cli/cowdisk"
fi

# Settings cannot change what the images contain, but a bad $COWDISK_CONFIG or /etc/cowdisk/cowdisk.json
# could stop the CLI: run it with an empty config file and no COWDISK_ variables.
unset COWDISK_CONFIG
while read -r name; do unset "$name"; done < <(env | sed -n 's/^\(COWDISK_[A-Za-z0-9_]*\)=.*/\1/p')
echo '{}' > "$work/empty.json"
cow() { "$COWDISK" --config "$work/empty.json" "$@" >/dev/null; }

# T(n): the first n bytes of `seq -w 0 99999` ("00000\n00001\n..."), a non-uniform pattern that shows
# misplaced bytes inside a block, which a one-byte pattern would not.
seq -w 0 99999 > "$work/text.bin"

cd "$here"

# --- v3-snapshots.img: format 3, 1 MiB, 4 KiB clusters, three snapshots made, one deleted, a revert -----
# (Built by any current build. The v1 fixtures below need a build of format 1, e.g. commit 67d503d's CLI:
#  REBUILD_V1=1 COWDISK=/path/to/that/cowdisk images/make-fixtures.sh. A current build would make them format 3.)
rm -f v3-snapshots.img v3-snapshots.img.meta.db v3-snapshots.img.meta.log
cow create v3-snapshots.img --size 1M --cluster-size 4K
cow io v3-snapshots.img write -P 0x11 0 16K                   # S1 blocks 0-3
cow snapshot create v3-snapshots.img first                    #    first: S1
cow io v3-snapshots.img write -P 0x22 4K 4K                   # S2 block 1, copied on write
cow io v3-snapshots.img discard 8K 4K                         # S3 block 2: dead, 'first' still reads it
cow snapshot create v3-snapshots.img second
cow io v3-snapshots.img write -P 0x33 1000000 100             # S4 inside block 244, a new extent
cow io v3-snapshots.img write -P 0x44 12K 4K                  # S5 block 3, copied on write
cow snapshot create v3-snapshots.img third
cow snapshot delete v3-snapshots.img second                   # S6 nothing only 'second' read: nothing freed
cow io v3-snapshots.img write -P 0x55 20K 4K                  # S7 block 5
cow snapshot revert v3-snapshots.img third                    # S8 block 5 unmapped again
[[ -s v3-snapshots.img.meta.log ]] && { echo "v3-snapshots.img was not closed cleanly" >&2; exit 1; }

if [[ "${REBUILD_V1:-}" != 1 ]]; then ls -l v3-snapshots.img* >&2; exit 0; fi
rm -f v1-base.img v1-base.img.meta.db v1-base.img.meta-log.db \
      v1-overlay.img v1-overlay.img.meta.db v1-overlay.img.meta-log.db \
      v1-raw-overlay.img v1-raw-overlay.img.meta.db v1-raw-overlay.img.meta-log.db \
      raw-base.bin

# --- v1-base.img: 1 MiB, 4 KiB clusters, no base --------------------------------------------------------
cow create v1-base.img --size 1M --cluster-size 4K
cow io v1-base.img write -P 0x11 0 8K                          # B1 blocks 0-1, whole
cow io v1-base.img write 12K 8K --from "$work/text.bin"        # B2 blocks 3-4: T(8192)
cow io v1-base.img write -P 0x33 20000 5000                    # B3 unaligned: in place in 4, new 5-6
cow io v1-base.img write -P 0x44 64K 16K                       # B4 blocks 16-19
cow io v1-base.img discard 68K 8K                              # B5 blocks 17-18 unmapped, clusters freed
cow io v1-base.img write -P 0x55 1020K 4K                      # B6 last block (255), reuses a freed cluster
cow io v1-base.img write -P 0x66 1000000 100                   # B7 unaligned inside block 244
cow io v1-base.img write -P 0x77 128K 8K                       # B8 blocks 32-33
cow io v1-base.img zero 130K 6K                                # B9 zero bytes in 32, block 33 unmapped

# --- v1-overlay.img: over v1-base.img (stored relative), 8 KiB clusters, 1 MiB from the base -----------
cow create v1-overlay.img --backing v1-base.img --cluster-size 8K
cow io v1-overlay.img write -P 0xaa 4196 100                   # O1 copy-first from the base (0x11)
cow io v1-overlay.img write -P 0xbb 24K 8K                     # O2 block 3, whole
cow io v1-overlay.img discard 64K 8K                           # O3 block 8 reads zeros over the base
cow io v1-overlay.img zero 1000000 24000                       # O4 partial block 122, blocks 123-124 zero
cow io v1-overlay.img write -P 0xcc 30000 10                   # O5 in place in block 3
cow io v1-overlay.img write -P 0xdd 16000 2000                 # O6 straddles blocks 1-2 over T

# --- raw-base.bin and v1-raw-overlay.img: a raw base, and an overlay larger than it --------------------
{ head -c 2048 /dev/zero; head -c 8192 "$work/text.bin"; head -c 6144 /dev/zero | tr '\0' 'Z'; } > raw-base.bin
cow create v1-raw-overlay.img --backing raw-base.bin --size 32K --cluster-size 4K
cow io v1-raw-overlay.img write -P 0xee 4000 200               # R1 straddles blocks 0-1, fill from raw
cow io v1-raw-overlay.img write -P 0xef 14000 5000             # R2 straddles the base's end (16K)
cow io v1-raw-overlay.img discard 8K 4K                        # R3 block 2 reads zeros over the base

# Every image was closed cleanly: the LiteDB logs are gone and only these files remain.
for f in *.meta-log.db; do
    [[ -e "$f" ]] && { echo "unexpected $f: an image was not closed cleanly" >&2; exit 1; }
done
ls -l v1-base.img* v1-overlay.img* v1-raw-overlay.img* raw-base.bin >&2
