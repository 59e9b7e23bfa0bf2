#!/usr/bin/env bash
# arm64 check: does segedge's edge install and give the same masks on aarch64 (a Raspberry Pi 4's
# Cortex-A72) as on x86? Runs on an x86-64 Debian host, as root, through qemu-user in a chroot.
#
#   host tools   apt-get install mmdebstrap qemu-user-static binfmt-support arch-test (when missing)
#   binfmt       mount binfmt_misc when needed, enable qemu-aarch64 (children of chroot run too)
#   rootfs       arm64 Bookworm root, cached in ~/.cache/segedge/arm64-bookworm (built in a temp
#                dir and renamed when complete, so an interrupted build is never reused)
#   x86          the wheel (as `make wheel`), a small demo bundle (int8, onnx-int8), predict masks
#   arm64        a venv with the wheel's [edge,camera,serve] from the package index, no TensorFlow,
#                data fetch --from a tiny VOC-layout tar on Bookworm's Python (3.11.2: a tarfile
#                without extraction filters) plus unsafe archives it must refuse,
#                segedge doctor (XNNPACK active), predict (int8, onnx-int8), segedge serve answering
#                one POST /v1/segment with predict's mask, bench with the gate
#   compare      arm64 masks vs x86 masks (scripts/compare_masks.py, bound below)
#
# Exit: 0 all passed; 1 a step failed (its log tail is printed); 77 this machine cannot run the
# check at all (one line saying why: not root, no apt/qemu/binfmt, no Debian archive).
# Latency under emulation means nothing; installability and correctness do.
#
# Environment knobs:
#   SEGEDGE_BIN         folder with the host's python and segedge (segedge[all]); default .venv/bin
#   SEGEDGE_ARM64_ROOT  the cached root; default ~/.cache/segedge/arm64-bookworm
#   SEGEDGE_ARM64_WORK  folder for the bundle, masks and logs; default a new /tmp/segedge-arm64.*
#   SEGEDGE_ARM64_MIRROR  Debian mirror for mmdebstrap; default http://deb.debian.org/debian
set -uo pipefail

SKIP=77
REPO=$(cd "${BASH_SOURCE[0]%/*}/.." && pwd)
BIN=${SEGEDGE_BIN:-$REPO/.venv/bin}
ROOT=${SEGEDGE_ARM64_ROOT:-${HOME:-/root}/.cache/segedge/arm64-bookworm}
MIRROR=${SEGEDGE_ARM64_MIRROR:-http://deb.debian.org/debian}
MARKER=.segedge-arm64-root          # written last into a complete root
VENV=/opt/segedge-check-venv       # inside the root, made fresh each run
INSIDE=/tmp/segedge-check           # inside the root: copies of the bundle and images
# Masks must agree on at least this fraction of pixels. Both artifacts are integer models (int8
# weights and activations, int32 accumulators, fixed-point requantisation), so ARM and x86 compute
# the same integers except where a kernel rounds a tie differently (NEON vs AVX2/VNNI paths). Such
# a one-step difference in a class score flips the argmax only where two classes score within one
# quantisation step: mostly class boundaries, more of them the less trained the model. Measured
# with this check's one-minute demo model (2026-11-30, AVX-512 VNNI host, XNNPACK on both sides):
# 100 % for both. Even a different kernel family (arm64 LiteRT without XNNPACK, before /sys was
# mounted, vs x86 XNNPACK) changed only 14 of 16,064 int8 pixels (99.913 %; 13 on a class
# boundary). 99.5 % leaves room for such rounding on another CPU (AVX2-only x86, a real A72),
# while a real divergence (a wrong scale, a float fallback, a broken kernel) changes whole
# regions, i.e. percents, and fails it.
MIN_EQUAL=0.995

SKIPPED=
skip() { echo "skipped: $*"; SKIPPED=1; exit "$SKIP"; }

# ---- can this machine run the check at all? (one line and exit 77 when not) ----------------------
[ "$(id -u)" = 0 ] || skip "the arm64 check needs root (chroot, mounts, binfmt_misc); run it as root"
[ "$(uname -m 2>/dev/null)" = x86_64 ] || skip "the arm64 check runs on an x86-64 host; this is $(uname -m)"

# A root is renamed into place only after its marker is written, so a folder there without it is not
# one this check built: refuse it rather than delete what segedge did not write.
if [ -e "$ROOT" ] && [ ! -f "$ROOT/$MARKER" ]; then
    echo "error: $ROOT exists but is not an arm64 root this check built (no $MARKER in it); move it" \
         "away or point SEGEDGE_ARM64_ROOT at another path"
    exit 1
fi

WANT=()
command -v mmdebstrap >/dev/null || WANT+=(mmdebstrap)
command -v qemu-aarch64-static >/dev/null || WANT+=(qemu-user-static)
command -v update-binfmts >/dev/null || WANT+=(binfmt-support)
command -v arch-test >/dev/null || WANT+=(arch-test)     # mmdebstrap needs it for a foreign arch
if [ ${#WANT[@]} -gt 0 ] && ! command -v apt-get >/dev/null; then
    skip "${WANT[*]} missing and no apt-get to install them (a Debian/Ubuntu host is needed)"
fi

START=$(date +%s)
WORK=${SEGEDGE_ARM64_WORK:-$(mktemp -d /tmp/segedge-arm64.XXXXXX)}
mkdir -p "$WORK/logs"
STEPS=()
MOUNTED=()

summary() {
    echo
    printf '%-22s %5s %8s\n' step exit seconds
    printf '%-22s %5s %8s\n' ---------------------- ----- --------
    local row
    for row in "${STEPS[@]}"; do printf '%-22s %5s %8s\n' $row; done
    printf '%-22s %5s %8s\n' total "" $(($(date +%s) - START))
    echo "logs: $WORK/logs"
}

# Unmount everything mounted at or below $1, deepest first (also what a killed run left behind).
umount_under() {
    local dir=$1 m
    for m in $(awk -v d="$dir" '$2 == d || index($2, d "/") == 1 {print $2}' /proc/mounts | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m"
    done
}

cleanup() {
    local rc=$?
    local i
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do umount "${MOUNTED[i]}" 2>/dev/null || umount -l "${MOUNTED[i]}"; done
    [ -n "${BUILD:-}" ] && [ -d "$BUILD" ] && { umount_under "$BUILD"; rm -rf --one-file-system "$BUILD"; }
    [ -d "$ROOT$INSIDE" ] && rm -rf --one-file-system "${ROOT:?}$INSIDE"
    [ -z "$SKIPPED" ] && [ ${#STEPS[@]} -gt 0 ] && summary
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# step NAME CMD...: run CMD with its output in logs/NAME.log; record exit code and seconds;
# stop the check (exit 1) with the log's tail when it fails.
step() {
    local name=$1; shift
    local t0 rc
    t0=$(date +%s)
    echo "== $name"
    "$@" >"$WORK/logs/$name.log" 2>&1
    rc=$?
    STEPS+=("$name $rc $(($(date +%s) - t0))")
    if [ "$rc" -ne 0 ]; then
        echo "FAILED: $name (exit $rc); last lines of $WORK/logs/$name.log:"
        tail -n 25 "$WORK/logs/$name.log"
        exit 1
    fi
}

# ---- host tools and binfmt (skip when they cannot be had) ------------------------------------------
if [ ${#WANT[@]} -gt 0 ]; then
    t0=$(date +%s)
    if ! { apt-get install -y --no-install-recommends "${WANT[@]}" || { apt-get update && apt-get install -y --no-install-recommends "${WANT[@]}"; }; } >"$WORK/logs/host-tools.log" 2>&1; then
        skip "apt-get could not install ${WANT[*]} (see $WORK/logs/host-tools.log)"
    fi
    STEPS+=("host-tools 0 $(($(date +%s) - t0))")
fi

if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null \
        || skip "binfmt_misc cannot be mounted here (a container without it?); qemu cannot run arm64 programs"
fi
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null \
    || skip "qemu-aarch64 is not registered in binfmt_misc (update-binfmts --enable qemu-aarch64 failed)"

# reachable URL: does a HEAD request succeed within 10 s? (curl, else the host's python3)
reachable() {
    if command -v curl >/dev/null; then
        timeout 10 curl -sfI "$1" >/dev/null 2>&1
    else
        timeout 10 python3 -c 'import sys, urllib.request as r; r.urlopen(r.Request(sys.argv[1], method="HEAD"))' "$1" \
            >/dev/null 2>&1
    fi
}

# ---- the arm64 root: reuse when complete, else build in a temp dir and rename ----------------------
build_root() {
    mkdir -p "${ROOT%/*}"
    BUILD=$(mktemp -d "$ROOT.tmp.XXXXXX")
    mmdebstrap --arch=arm64 --variant=minbase \
        --include=python3,python3-venv,python3-pip,ca-certificates bookworm "$BUILD" "$MIRROR" || return 1
    chroot "$BUILD" /usr/bin/python3 --version || return 1
    date -u +%FT%TZ >"$BUILD/$MARKER"
    mv "$BUILD" "$ROOT" && BUILD=
}
if [ -f "$ROOT/$MARKER" ]; then
    STEPS+=("rootfs(cached) 0 0")
else
    for old in "$ROOT".tmp.*; do [ -d "$old" ] && { umount_under "$old"; rm -rf --one-file-system "$old"; }; done
    reachable "$MIRROR/dists/bookworm/Release" \
        || skip "the Debian archive ($MIRROR) is not reachable, and no cached arm64 root at $ROOT"
    # Building the root is the machine's part (mmdebstrap, the archive, qemu): when it cannot be done at
    # all, the check is skipped, as for a missing tool; everything after it is segedge's and fails CI.
    t0=$(date +%s)
    echo "== rootfs"
    if ! build_root >"$WORK/logs/rootfs.log" 2>&1; then
        skip "the arm64 root could not be built here (mmdebstrap failed; see $WORK/logs/rootfs.log)"
    fi
    STEPS+=("rootfs 0 $(($(date +%s) - t0))")
fi

# ---- on x86: wheel, demo bundle, reference masks ----------------------------------------------------
[ -x "$BIN/segedge" ] || { echo "error: no segedge at $BIN (run 'make install' or set SEGEDGE_BIN)"; exit 1; }
step wheel "$BIN/python" -m pip wheel --no-deps --wheel-dir "$WORK/dist" "$REPO"   # what `make wheel` runs
WHEEL=$(ls "$WORK"/dist/segedge-*.whl)

demo_bundle() {
    # The `make demo` pipeline with small knobs (about 2 minutes on 2 cores): the check needs a
    # real bundle with int8 and ONNX int8 artifacts, not an accurate model.
    "$BIN/segedge" data synth "$WORK/data" --images 120 --size 64 --seed 0 --overwrite &&
        "$BIN/segedge" train "$WORK/data" --out "$WORK/run" --image-size 64 --epochs 6 --batch-size 16 --overwrite &&
        "$BIN/segedge" export "$WORK/run" --out "$WORK/bundle" --format int8,onnx-int8 \
            --calib-images 40 --eval-images 20 --overwrite &&
        mkdir -p "$WORK/images" &&
        cp $(ls "$WORK"/data/JPEGImages/*.jpg | sort | head -n 5) "$WORK/images/"
}
step demo-bundle demo_bundle

predict_x86() {
    local fmt
    for fmt in int8 onnx-int8; do
        "$BIN/segedge" predict "$WORK/bundle" "$WORK/images" --format "$fmt" --threads 1 --no-overlay \
            --out "$WORK/masks-x86/$fmt" || return 1
    done
}
step predict-x86 predict_x86

voc_archive() {
    # A tiny VOCtrainval_11-May-2012.tar look-alike: the synth generator's VOC layout with the real
    # tar's member layout (VOCdevkit/, VOCdevkit/VOC2012/, its folders and files; no segedge marker).
    rm -rf "$WORK/voc-src" && mkdir -p "$WORK/voc-src/VOCdevkit" &&
        "$BIN/segedge" data synth "$WORK/voc-src/VOCdevkit/VOC2012" --images 12 --size 48 --seed 1 &&
        tar -C "$WORK/voc-src" --exclude=.segedge.json --owner=0 --group=0 -cf "$WORK/voc-tiny.tar" VOCdevkit &&
        tar -tf "$WORK/voc-tiny.tar" | sed -n 1,4p   # sed reads it all: no SIGPIPE under pipefail
}
step voc-archive voc_archive

# Run inside the root as `python fetch_check.py TAR DEST`: the tiny tar is not the official one, so the
# md5 pinned for voc2012 is pointed at it (nothing else changes), then the real command line runs
# `segedge data fetch voc2012 DEST --from TAR`; then archives with unsafe members must be refused with
# nothing written outside the destination. tests/test_arm64_check.py runs this same text on the host.
cat >"$WORK/fetch_check.py" <<'PY'
import dataclasses, hashlib, io, os, sys, tarfile
from pathlib import Path
from segedge.cli import main
from segedge.data import fetch
from segedge.data.download import Checksum

archive, dest = sys.argv[1], Path(sys.argv[2])
print(f"python {sys.version.split()[0]}; tarfile extraction filters: {hasattr(tarfile, 'data_filter')}")
voc = fetch.SOURCES["voc2012"]
md5 = hashlib.md5(Path(archive).read_bytes()).hexdigest()
fetch.SOURCES["voc2012"] = dataclasses.replace(voc, checksum=Checksum("md5", md5), size=None)
sys.argv = ["segedge", "data", "fetch", "voc2012", str(dest), "--from", archive]
try:
    main()
except SystemExit as done:
    if done.code not in (0, None):
        raise
assert Path(archive).is_file(), "--from archive was deleted"

work = dest.parent / "unsafe"
outside = work / "outside"
outside.mkdir(parents=True)
cases = {
    "dotdot": [("VOCdevkit/VOC2012/../../outside/up.txt", tarfile.REGTYPE, "")],
    "symlink out": [("VOCdevkit/VOC2012/l", tarfile.SYMTYPE, str(outside)),
                    ("VOCdevkit/VOC2012/l/through.txt", tarfile.REGTYPE, "")],
    "hardlink out": [("VOCdevkit/VOC2012/h", tarfile.LNKTYPE, str(outside / "victim.txt"))],
    "fifo": [("VOCdevkit/VOC2012/p", tarfile.FIFOTYPE, "")],
}
for n, (case, members) in enumerate(cases.items()):
    evil = work / f"{n}.tar"
    with tarfile.open(evil, "w") as tar:
        for name, kind, link in members:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.size = kind, link, 1 if kind == tarfile.REGTYPE else 0
            tar.addfile(info, io.BytesIO(b"x") if kind == tarfile.REGTYPE else None)
    out = work / f"out-{n}"
    out.mkdir()
    try:
        fetch.extract(evil, voc.root, out)
    except fetch.UnsafeMember as refused:
        print(f"{case}: refused: {refused.message}")
    else:
        sys.exit(f"{case}: was unpacked")
    assert os.listdir(outside) == [], f"{case}: wrote {os.listdir(outside)} outside the destination"
print("fetch check passed")
PY

# Run inside the root as `python serve_check.py BUNDLE IMAGE MASK`: `segedge serve` on a free port, one
# POST /v1/segment of IMAGE, its mask PNG equal to MASK (predict's for the same file), then SIGTERM and
# exit 0. tests/test_serve_arm64.py runs this same text on the host.
cat >"$WORK/serve_check.py" <<'PY'
import io, json, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import numpy as np
from PIL import Image

bundle, image, expected = sys.argv[1:4]
with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
base = f"http://127.0.0.1:{port}"
server = subprocess.Popen([sys.executable, "-c", "from segedge.cli import main; main()", "serve", bundle,
                           "--format", "int8", "--threads", "1", "--port", str(port)])
try:
    deadline = time.monotonic() + 900  # model load and self-check under qemu take minutes
    while True:
        try:
            health = json.loads(urllib.request.urlopen(base + "/healthz", timeout=10).read())
            break
        except OSError:
            if server.poll() is not None:
                sys.exit(f"segedge serve exited {server.returncode} before answering")
            if time.monotonic() > deadline:
                sys.exit("segedge serve did not answer /healthz")
            time.sleep(1)
    print(f"healthz: {health['status']}, model {health['model']}")
    request = urllib.request.Request(base + "/v1/segment?format=png", data=Path(image).read_bytes(),
                                     headers={"Content-Type": "image/jpeg"})
    served = np.asarray(Image.open(io.BytesIO(urllib.request.urlopen(request, timeout=600).read())))
    wanted = np.asarray(Image.open(expected))
    assert served.shape == wanted.shape, (served.shape, wanted.shape)
    equal = float(np.mean(served == wanted))
    print(f"POST /v1/segment: {served.shape[1]}x{served.shape[0]} mask, {100 * equal:.3f} % equal to predict's")
    assert equal == 1.0, "the served mask differs from predict's for the same file"
finally:
    server.send_signal(signal.SIGTERM)
    code = server.wait(60)
assert code == 0, f"segedge serve exited {code} on SIGTERM"
print("serve check passed")
PY

# ---- inside the arm64 root --------------------------------------------------------------------------
cpuinfo_a72() {
    # /proc/cpuinfo in a chroot is the host's x86 file, and onnxruntime's CPU detection crashes on
    # it under qemu-user: show it a Raspberry Pi 4's (Cortex-A72), one entry per host core.
    local n
    for ((n = 0; n < $(nproc); n++)); do
        printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$n"
        printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n'
    done
    printf 'Hardware\t: BCM2835\nRevision\t: c03111\nModel\t\t: Raspberry Pi 4 Model B Rev 1.1\n'
}

umount_under "$ROOT"
mount -t proc proc "$ROOT/proc" && MOUNTED+=("$ROOT/proc")
mount --bind /dev "$ROOT/dev" && MOUNTED+=("$ROOT/dev")
# Without /sys, XNNPACK's CPU detection cannot read the possible/present CPU lists and LiteRT
# silently runs without its XNNPACK delegate, which is not what a Pi runs.
mount -t sysfs -o ro sysfs "$ROOT/sys" && MOUNTED+=("$ROOT/sys")
cpuinfo_a72 >"$WORK/cpuinfo"
mount --bind "$WORK/cpuinfo" "$ROOT/proc/cpuinfo" && MOUNTED+=("$ROOT/proc/cpuinfo")

# pip in the root reaches the package index the way the host does: its CA bundle (TLS may go
# through an intercepting proxy), its pip configuration files and PIP_* settings.
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
HOST_CA=
for f in "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
    [ -n "$f" ] && [ -f "$f" ] && { HOST_CA=$f; break; }
done
[ -n "$HOST_CA" ] && cp "$HOST_CA" "$ROOT/etc/segedge-host-ca.crt"
copy_conf() { [ -f "$1" ] && mkdir -p "$ROOT${2%/*}" && cp "$1" "$ROOT$2"; }
for f in /etc/pip.conf /etc/xdg/pip/pip.conf /etc/xdg/pip/constraints.txt; do copy_conf "$f" "$f"; done
copy_conf "${HOME:-/root}/.config/pip/pip.conf" /root/.config/pip/pip.conf
ENV=(HOME=/root PATH=$VENV/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 QEMU_CPU=cortex-a72)
[ -n "$HOST_CA" ] && ENV+=(PIP_CERT=/etc/segedge-host-ca.crt SSL_CERT_FILE=/etc/segedge-host-ca.crt)
while IFS='=' read -r k v; do
    case $k in PIP_CERT) ;; PIP_*) ENV+=("$k=$v") ;; esac
done < <(env | grep '^PIP_')

# arm NAME CMD: run a shell command line inside the root (arm64, under qemu, Cortex-A72).
arm() { local name=$1; shift; step "$name" env -i QEMU_CPU=cortex-a72 "$(command -v chroot)" "$ROOT" /usr/bin/env -i "${ENV[@]}" /bin/bash -c "$*"; }

rm -rf --one-file-system "${ROOT:?}$INSIDE" "${ROOT:?}$VENV"
mkdir -p "$ROOT$INSIDE"
cp -r "$WORK/bundle" "$WORK/images" "$WHEEL" "$WORK/voc-tiny.tar" "$WORK/fetch_check.py" "$WORK/serve_check.py" \
    "$ROOT$INSIDE/"
W=$INSIDE/${WHEEL##*/}

arm venv-install "uname -m && python3 -m venv $VENV && pip install '$W[edge,camera,serve]' && pip list"
arm no-tensorflow "! pip show tensorflow tensorflow-cpu tf-nightly && \
    python -c 'import importlib.util as u, sys; sys.exit(u.find_spec(\"tensorflow\") is not None)'"
# data fetch on the Pi's Python: unpack the tiny VOC tar with --from (the archive is kept), check the
# dataset opens, and refuse unsafe archives
arm fetch-voc "python $INSIDE/fetch_check.py $INSIDE/voc-tiny.tar $INSIDE/voc/VOC2012 && \
    segedge data check $INSIDE/voc/VOC2012 && test -f $INSIDE/voc-tiny.tar"
sed 's/^/    /' "$WORK/logs/fetch-voc.log" | grep -E 'python|refused|passed|ids|^    ok' | sed -n 1,12p
# doctor must pass and LiteRT must report its XNNPACK delegate, as it does on a Pi
arm doctor "segedge doctor >$INSIDE/doctor.txt; rc=\$?; cat $INSIDE/doctor.txt; \
    [ \$rc = 0 ] && grep -q 'XNNPACK delegate active' $INSIDE/doctor.txt"
sed 's/^/    /' "$WORK/logs/doctor.log"
arm predict-arm64 "for f in int8 onnx-int8; do segedge predict $INSIDE/bundle $INSIDE/images --format \$f \
    --threads 1 --no-overlay --out $INSIDE/masks/\$f || exit 1; done"
cp -r "$ROOT$INSIDE/masks" "$WORK/masks-arm64"
# the same model over HTTP: one upload answered with the mask predict wrote for that file
arm serve-arm64 "img=\$(ls $INSIDE/images/*.jpg | sort | head -n 1) && stem=\${img##*/} && \
    python $INSIDE/serve_check.py $INSIDE/bundle \$img $INSIDE/masks/int8/\${stem%.*}.png"
sed 's/^/    /' "$WORK/logs/serve-arm64.log" | grep -E 'healthz|POST|passed'
arm bench-gate "segedge bench $INSIDE/bundle --out $INSIDE/report --format int8,onnx-int8 --threads 1 \
    --runs 3 --warmup 1 --e2e-images 2 --gallery 0 --no-plot --child-timeout 900"
cp -r "$ROOT$INSIDE/report" "$WORK/report-arm64"
sed 's/^/    /' "$WORK/logs/bench-gate.log" | grep -v '^    $' | tail -n 12

# ---- compare ------------------------------------------------------------------------------------------
step mask-compare "$BIN/python" "$REPO/scripts/compare_masks.py" "$WORK/masks-x86" "$WORK/masks-arm64" \
    --min-equal "$MIN_EQUAL"
sed 's/^/    /' "$WORK/logs/mask-compare.log"
echo "arm64 check passed"
