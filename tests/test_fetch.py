"""``segedge data fetch`` and ``--encoder-weights imagenet`` against a local HTTP server.

Nothing here reaches beyond 127.0.0.1: the archives are small VOC/SBD look-alikes built from
``segedge.data.synth`` in the real archives' layouts, served by ``http.server`` in a thread
(with HTTP Range support, a one-time connection cut and a request log), and the registry of
sources is patched to point at it with the generated files' own checksums.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import http.server
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from segedge.cli import app
from segedge.commands import user_errors
from segedge.data import download as download_module
from segedge.data import fetch as fetch_module
from segedge.data.check import check_dataset
from segedge.data.download import Checksum, DownloadError, cache_dir
from segedge.data.fetch import ArchiveSource
from segedge.data.images import read_mask
from segedge.data.sbd import train_aug_ids
from segedge.data.splits import make_split
from segedge.data.synth import SynthConfig, generate
from segedge.data.voc import VocDataset
from segedge.train import model as model_module
from segedge.train.config import make_config
from segedge.train.pipeline import build_split
from segedge.util.errors import OutputError

REPO = Path(__file__).resolve().parents[1]
VOC_IDS = [f"synth_{i:06d}" for i in range(12)]  # synth: the last round(12 * 0.4) = 5 are val
VOC_TRAIN, VOC_VAL = VOC_IDS[:7], VOC_IDS[7:]
SBD_ONLY = ["sbd_000000", "sbd_000001", "sbd_000002"]  # images VOC's JPEGImages lacks
SBD_TRAIN = ["synth_000001", "synth_000008", "sbd_000000", "sbd_000001"]
SBD_VAL = ["synth_000002", "synth_000009", "sbd_000002"]
# VOC train + SBD train + SBD val - VOC val, listed by hand (synth_000008/9 are VOC val ids).
EXPECTED_TRAIN_AUG = ["sbd_000000", "sbd_000001", "sbd_000002", "synth_000000", "synth_000001", "synth_000002",
                      "synth_000003", "synth_000004", "synth_000005", "synth_000006"]


# -- the local server ------------------------------------------------------------------------------

class Served:
    """What the server holds and saw: path -> bytes, one-time cuts, extra headers, the request log."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_once: dict[str, int] = {}
        self.headers: dict[str, dict[str, str]] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.base = ""

    def add(self, path: str, data: bytes, **headers: str) -> str:
        self.files[path] = data
        self.headers[path] = headers
        return self.base + path


def _handler(served: Served):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 10

        def log_message(self, *args) -> None:  # keep pytest output clean
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            served.requests.append((self.path, self.headers.get("Range")))
            data = served.files.get(self.path)
            if data is None:
                self.send_error(404, "Not Found")
                return
            start = 0
            wanted = self.headers.get("Range")
            if wanted and wanted.startswith("bytes=") and wanted.endswith("-"):
                start = int(wanted[len("bytes="):-1])
                if start >= len(data):
                    self.send_error(416, "Range Not Satisfiable")
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            for key, value in served.headers.get(self.path, {}).items():
                self.send_header(key, value)
            self.end_headers()
            cut = served.cut_once.pop(self.path, None)
            if cut is not None:  # promise the whole body, send part of it, hang up
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(body)

    return Handler


@pytest.fixture
def served():
    state = Served()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:  # bound then released: nothing listens there, connect is refused
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(autouse=True)
def private_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGEDGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(download_module, "DEFAULT_TIMEOUT_S", 10.0)


# -- archives in the official layouts -------------------------------------------------------------

def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 1_300_000_000
    tar.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def voc_source(tmp_path_factory) -> Path:
    """A 12-image synthetic VOC2012 folder (7 train, 5 val)."""
    return generate(tmp_path_factory.mktemp("vocsrc") / "VOC2012", SynthConfig(images=12, size=48, seed=3))


@pytest.fixture(scope="module")
def voc_tar(voc_source: Path) -> bytes:
    """VOCtrainval_11-May-2012.tar's layout: everything under VOCdevkit/VOC2012/."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(voc_source.rglob("*")):
            if path.is_file() and path.name != ".segedge.json":  # the real tar has no segedge marker
                _add(tar, f"VOCdevkit/VOC2012/{path.relative_to(voc_source).as_posix()}", path.read_bytes())
        _add(tar, "VOCdevkit/VOC2012/Annotations/synth_000000.xml", b"<annotation/>")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def sbd_masks(voc_source: Path, tmp_path_factory) -> dict[str, np.ndarray]:
    """The class masks put into SBD's .mat files: VOC's with void cleared (SBD has none), new ones."""
    extra = generate(tmp_path_factory.mktemp("sbdsrc") / "extra", SynthConfig(images=3, size=48, seed=9))
    masks = {}
    for sample_id in SBD_TRAIN + SBD_VAL:
        if sample_id.startswith("synth_"):
            mask = read_mask(voc_source / "SegmentationClass" / f"{sample_id}.png")
        else:
            mask = read_mask(extra / "SegmentationClass" / f"synth_{sample_id[-6:]}.png")
        masks[sample_id] = np.where(mask == 255, 0, mask).astype(np.uint8)
    masks["_extra_root"] = extra  # type: ignore[assignment]
    return masks


@pytest.fixture(scope="module")
def sbd_tgz(voc_source: Path, sbd_masks) -> bytes:
    """benchmark.tgz's layout: benchmark_RELEASE/dataset/{img,cls,inst,train.txt,val.txt}."""
    sio = pytest.importorskip("scipy.io")
    sparse = pytest.importorskip("scipy.sparse")
    extra = sbd_masks["_extra_root"]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        base = "benchmark_RELEASE/dataset"
        _add(tar, f"{base}/train.txt", ("\n".join(SBD_TRAIN) + "\n").encode())
        _add(tar, f"{base}/val.txt", ("\n".join(SBD_VAL) + "\n").encode())
        for sample_id in SBD_TRAIN + SBD_VAL:
            mask = sbd_masks[sample_id]
            boundaries = np.empty((20, 1), dtype=object)  # as in SBD: one sparse edge map per class
            for k in range(20):
                boundaries[k, 0] = sparse.csc_matrix(np.zeros(mask.shape, dtype=bool))
            mat = io.BytesIO()
            sio.savemat(mat, {"GTcls": {"Boundaries": boundaries, "Segmentation": mask,
                                        "CategoriesPresent": np.unique(mask)[1:].astype(np.float64)}},
                        do_compression=True)
            _add(tar, f"{base}/cls/{sample_id}.mat", mat.getvalue())
            _add(tar, f"{base}/inst/{sample_id}.mat", mat.getvalue())
            image = (voc_source / "JPEGImages" / f"{sample_id}.jpg") if sample_id.startswith("synth_") else (
                extra / "JPEGImages" / f"synth_{sample_id[-6:]}.jpg")
            _add(tar, f"{base}/img/{sample_id}.jpg", image.read_bytes())
    return buffer.getvalue()


def _register(monkeypatch, name: str, url: str, data: bytes, **overrides) -> None:
    source = fetch_module.SOURCES[name]
    fields = dict(name=name, url=url, filename=source.filename, root=source.root,
                  checksum=Checksum("md5", hashlib.md5(data).hexdigest()), size=len(data))
    fields.update(overrides)
    monkeypatch.setitem(fetch_module.SOURCES, name, ArchiveSource(**fields))


def _cli(*args: str):
    return CliRunner().invoke(app, list(args))


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# -- voc2012 ---------------------------------------------------------------------------------------

def test_full_voc_fetch_unpacks_the_devkit_and_passes_check(served, voc_tar, voc_source, tmp_path, monkeypatch):
    _register(monkeypatch, "voc2012", served.add("/voc.tar", voc_tar), voc_tar)
    dest = tmp_path / "data" / "VOC2012"
    result = _cli("data", "fetch", "voc2012", str(dest))
    assert result.exit_code == 0, result.output
    assert "train" in result.output and result.output.rstrip().endswith("ok")
    report = check_dataset(dest)
    assert report.ok and report.counts == {"train": 7, "val": 5, "trainval": 12}
    for path in voc_source.rglob("*.*"):  # every file byte for byte, under DEST itself (prefix stripped)
        if path.name != ".segedge.json":  # the source's own marker was not in the tar
            assert (dest / path.relative_to(voc_source)).read_bytes() == path.read_bytes()
    assert json.loads((dest / ".segedge.json").read_text())["kind"] == "dataset"  # DEST is segedge's output
    assert (dest / "Annotations" / "synth_000000.xml").read_bytes() == b"<annotation/>"
    assert _leftovers(cache_dir()) == []  # the downloaded archive is deleted once unpacked
    assert _leftovers(dest.parent) == ["VOC2012"]  # no temp folder beside DEST


def test_fetch_refuses_an_existing_dest_without_overwrite(served, voc_tar, tmp_path, monkeypatch):
    _register(monkeypatch, "voc2012", served.add("/voc.tar", voc_tar), voc_tar)
    dest = tmp_path / "VOC2012"
    dest.mkdir()
    (dest / "mine.txt").write_text("user data")
    for extra in ([], ["--overwrite"]):  # a folder of the user's is never replaced, not even with --overwrite
        result = _cli("data", "fetch", "voc2012", str(dest), *extra)
        assert result.exit_code == OutputError.exit_code
        assert len(_error_lines(result.output)) == 1 and "mine.txt" in result.output
        assert (dest / "mine.txt").read_text() == "user data" and served.requests == []


def test_a_cut_connection_is_resumed_with_a_range_request(served, voc_tar, tmp_path, monkeypatch):
    url = served.add("/voc.tar", voc_tar)
    served.cut_once["/voc.tar"] = cut = len(voc_tar) // 3
    _register(monkeypatch, "voc2012", url, voc_tar)
    dest = tmp_path / "VOC2012"
    result = _cli("data", "fetch", "voc2012", str(dest))
    assert result.exit_code == 0, result.output
    assert served.requests == [("/voc.tar", None), ("/voc.tar", f"bytes={cut}-")]
    assert check_dataset(dest).ok


def test_a_download_cut_in_one_run_resumes_in_the_next(served, voc_tar, tmp_path, monkeypatch):
    url = served.add("/voc.tar", voc_tar)
    served.cut_once["/voc.tar"] = cut = len(voc_tar) // 2
    _register(monkeypatch, "voc2012", url, voc_tar)
    monkeypatch.setattr(download_module, "DEFAULT_ATTEMPTS", 1)
    dest = tmp_path / "VOC2012"
    first = _cli("data", "fetch", "voc2012", str(dest))
    assert first.exit_code == 3 and len(_error_lines(first.output)) == 1, first.output
    assert "resumes" in first.output and "--from FILE" in first.output
    assert not dest.exists()
    part = cache_dir() / "VOCtrainval_11-May-2012.tar.part"
    assert part.stat().st_size == cut and part.read_bytes() == voc_tar[:cut]
    second = _cli("data", "fetch", "voc2012", str(dest))
    assert second.exit_code == 0, second.output
    assert served.requests[-1] == ("/voc.tar", f"bytes={cut}-")
    assert check_dataset(dest).ok and not part.exists()


def test_checksum_mismatch_is_one_line_and_leaves_nothing(served, voc_tar, tmp_path, monkeypatch):
    _register(monkeypatch, "voc2012", served.add("/voc.tar", voc_tar), voc_tar,
              checksum=Checksum("md5", "0" * 32))
    dest = tmp_path / "VOC2012"
    result = _cli("data", "fetch", "voc2012", str(dest))
    assert result.exit_code == 3
    [line] = _error_lines(result.output)
    assert f"md5 is {hashlib.md5(voc_tar).hexdigest()}, expected {'0' * 32}" in line and "/voc.tar" in line
    assert not dest.exists() and _leftovers(tmp_path) == ["cache"] and _leftovers(cache_dir()) == []


def test_http_404_is_one_line(served, voc_tar, tmp_path, monkeypatch):
    _register(monkeypatch, "voc2012", served.base + "/gone.tar", voc_tar)
    result = _cli("data", "fetch", "voc2012", str(tmp_path / "VOC2012"))
    assert result.exit_code == 3
    [line] = _error_lines(result.output)
    assert "HTTP 404" in line and "/gone.tar" in line and "--from FILE" in line
    assert not (tmp_path / "VOC2012").exists() and _leftovers(cache_dir()) == []


def test_from_a_local_archive_and_a_mirror_url(served, voc_tar, tmp_path, monkeypatch):
    _register(monkeypatch, "voc2012", served.base + "/official-is-down.tar", voc_tar)
    archive = tmp_path / "VOCtrainval_11-May-2012.tar"
    archive.write_bytes(voc_tar)
    local = _cli("data", "fetch", "voc2012", str(tmp_path / "a"), "--from", str(archive))
    assert local.exit_code == 0, local.output
    assert archive.read_bytes() == voc_tar and served.requests == []  # the user's file is kept, no network
    mirror = served.add("/mirror/voc.tar", voc_tar)
    remote = _cli("data", "fetch", "voc2012", str(tmp_path / "b"), "--from", mirror)
    assert remote.exit_code == 0, remote.output
    assert served.requests == [("/mirror/voc.tar", None)]
    assert check_dataset(tmp_path / "a").ok and check_dataset(tmp_path / "b").ok
    missing = _cli("data", "fetch", "voc2012", str(tmp_path / "c"), "--from", str(tmp_path / "nope.tar"))
    assert missing.exit_code == 2 and len(_error_lines(missing.output)) == 1 and "--from" in missing.output
    archive.write_bytes(voc_tar[:-1] + b"x")
    bad = _cli("data", "fetch", "voc2012", str(tmp_path / "c"), "--from", str(archive))
    assert bad.exit_code == 3 and len(_error_lines(bad.output)) == 1 and str(archive) in bad.output


def test_unpack_interrupted_midway_leaves_no_dest_and_a_rerun_succeeds(served, voc_tar, tmp_path, monkeypatch):
    _register(monkeypatch, "voc2012", served.add("/voc.tar", voc_tar), voc_tar)
    dest = tmp_path / "VOC2012"
    real_extract = tarfile.TarFile.extract
    calls = []

    def interrupted(self, member, *args, **kwargs):
        calls.append(member.name)
        if len(calls) == 6:
            raise KeyboardInterrupt
        return real_extract(self, member, *args, **kwargs)

    monkeypatch.setattr(tarfile.TarFile, "extract", interrupted)
    result = _cli("data", "fetch", "voc2012", str(dest))
    assert result.exit_code == 130 and len(calls) == 6
    assert not dest.exists() and _leftovers(tmp_path) == ["cache"]
    monkeypatch.setattr(tarfile.TarFile, "extract", real_extract)
    again = _cli("data", "fetch", "voc2012", str(dest))
    assert again.exit_code == 0, again.output
    assert check_dataset(dest).ok
    assert len(served.requests) == 1  # the verified archive was kept in the cache for the rerun


def test_unpack_killed_with_sigkill_leaves_no_dest(voc_tar, tmp_path):
    archive = tmp_path / "voc.tar"
    archive.write_bytes(voc_tar)
    dest = tmp_path / "out" / "VOC2012"
    script = f"""
import hashlib, os, signal, tarfile
from segedge.data import fetch
from segedge.data.download import Checksum
fetch.SOURCES["voc2012"] = fetch.ArchiveSource(
    name="voc2012", url="http://127.0.0.1:9/unused", filename="v.tar", root="VOCdevkit/VOC2012",
    checksum=Checksum("md5", {hashlib.md5(voc_tar).hexdigest()!r}))
real, calls = tarfile.TarFile.extract, []
def extract(self, member, *args, **kwargs):
    calls.append(1)
    if len(calls) == 10:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, member, *args, **kwargs)
tarfile.TarFile.extract = extract
fetch.fetch("voc2012", {str(dest)!r}, origin={str(archive)!r})
"""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    killed = subprocess.run([sys.executable, "-c", script], env=env, timeout=120, capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert not dest.exists()
    stale = _leftovers(dest.parent)
    assert len(stale) == 1 and stale[0].startswith(".segedge-tmp-") and "VOC2012" in stale[0]  # partial, hidden
    with pytest.MonkeyPatch.context() as patch:
        _register(patch, "voc2012", "http://127.0.0.1:9/unused", voc_tar)
        fetch_module.fetch("voc2012", dest, origin=str(archive))
    assert check_dataset(dest).ok and _leftovers(dest.parent) == ["VOC2012"]  # the stale temp was removed


# -- sbd and train_aug -----------------------------------------------------------------------------

def test_sbd_adds_train_aug_masks_and_split(served, voc_tar, sbd_tgz, sbd_masks, voc_source, tmp_path,
                                            monkeypatch):
    _register(monkeypatch, "voc2012", served.add("/voc.tar", voc_tar), voc_tar)
    _register(monkeypatch, "sbd", served.add("/benchmark.tgz", sbd_tgz), sbd_tgz, size=None)
    dest = tmp_path / "VOC2012"
    assert _cli("data", "fetch", "voc2012", str(dest)).exit_code == 0
    result = _cli("data", "fetch", "sbd", str(dest))
    assert result.exit_code == 0, result.output
    assert "10 train_aug" in result.output and result.output.rstrip().endswith("ok")

    listed = (dest / "ImageSets" / "Segmentation" / "train_aug.txt").read_text().split()
    assert listed == EXPECTED_TRAIN_AUG
    assert train_aug_ids(VOC_TRAIN, VOC_VAL, SBD_TRAIN, SBD_VAL) == EXPECTED_TRAIN_AUG
    split = make_split(VocDataset.open(dest), "train_aug")
    assert (split.train, split.val, split.kind) == (EXPECTED_TRAIN_AUG, VOC_VAL, "train_aug")
    config = make_config(dest, tmp_path / "run", split="train_aug")  # 'segedge train DEST --split train_aug'
    assert build_split(VocDataset.open(dest), config).train == EXPECTED_TRAIN_AUG
    _, mask = VocDataset.open(dest).load_pair("sbd_000001")  # the reader finds SBD-only masks
    assert np.array_equal(mask, sbd_masks["sbd_000001"])

    aug = dest / "SegmentationClassAug"
    assert sorted(p.stem for p in aug.glob("*.png")) == sorted(set(VOC_IDS) | set(SBD_ONLY))
    for sample_id in SBD_ONLY:  # SBD's own masks, as index PNGs with VOC's palette
        png = Image.open(aug / f"{sample_id}.png")
        assert png.mode == "P" and np.array_equal(np.asarray(png), sbd_masks[sample_id])
        assert (dest / "JPEGImages" / f"{sample_id}.jpg").is_file()  # the image VOC lacked, added
    voc_mask = read_mask(voc_source / "SegmentationClass" / "synth_000001.png")
    assert (voc_mask == 255).any()  # VOC's annotation (with void borders) wins over SBD's for shared ids
    assert np.array_equal(read_mask(aug / "synth_000001.png"), voc_mask)
    assert check_dataset(dest).counts["train_aug"] == 10 and check_dataset(dest).ok
    assert [name for name in _leftovers(tmp_path) if name != "cache"] == ["VOC2012"]
    assert not [p for p in dest.iterdir() if p.name.startswith(".segedge-tmp")]

    again = _cli("data", "fetch", "sbd", str(dest))
    assert again.exit_code == OutputError.exit_code and "--overwrite" in again.output
    (aug / "sbd_000000.png").unlink()
    replaced = _cli("data", "fetch", "sbd", str(dest), "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert (aug / "sbd_000000.png").is_file() and not [p for p in dest.iterdir() if p.name.startswith(".segedge-")]


def test_sbd_never_replaces_masks_it_did_not_write(served, voc_tar, sbd_tgz, tmp_path, monkeypatch):
    """A SegmentationClassAug/ of the user's own (no segedge marker) survives, even with --overwrite."""
    _register(monkeypatch, "voc2012", served.add("/voc.tar", voc_tar), voc_tar)
    _register(monkeypatch, "sbd", served.add("/benchmark.tgz", sbd_tgz), sbd_tgz, size=None)
    dest = tmp_path / "VOC2012"
    assert _cli("data", "fetch", "voc2012", str(dest)).exit_code == 0
    mine = dest / "SegmentationClassAug" / "my_mask.png"
    mine.parent.mkdir()
    mine.write_bytes(b"the user's own mask")
    for extra in ([], ["--overwrite"]):
        result = _cli("data", "fetch", "sbd", str(dest), *extra)
        assert result.exit_code == OutputError.exit_code, result.output
        assert len(_error_lines(result.output)) == 1 and "my_mask.png" in result.output
    assert mine.read_bytes() == b"the user's own mask"
    assert not (dest / "ImageSets" / "Segmentation" / "train_aug.txt").exists()


def test_sbd_needs_a_voc_folder_first(tmp_path):
    result = _cli("data", "fetch", "sbd", str(tmp_path / "nothing"))
    assert result.exit_code == 3
    [line] = _error_lines(result.output)
    assert "segedge data fetch voc2012" in line


def test_train_aug_split_without_sbd_says_how_to_get_it(voc_source):
    from segedge.util.errors import DataError

    with pytest.raises(DataError, match="segedge data fetch sbd"):
        make_split(VocDataset.open(voc_source), "train_aug")


# -- --encoder-weights imagenet ---------------------------------------------------------------------

WEIGHTS = model_module.HDF5_SIGNATURE + np.random.default_rng(0).bytes(40_000)


def _goog_md5(data: bytes) -> str:
    return "crc32c=AAAAAA==,md5=" + base64.b64encode(hashlib.md5(data).digest()).decode()


def test_imagenet_weights_are_downloaded_into_keras_cache(served, tmp_path, monkeypatch):
    served.add(f"/keras/{model_module.IMAGENET_WEIGHTS_FILE}", WEIGHTS, **{"x-goog-hash": _goog_md5(WEIGHTS)})
    monkeypatch.setenv("SEGEDGE_WEIGHTS_URL", served.base + "/keras/")
    monkeypatch.setattr(model_module, "IMAGENET_WEIGHTS_CHECKSUM",
                        Checksum("sha256", hashlib.sha256(WEIGHTS).hexdigest()))
    path = model_module.resolve_encoder_weights("imagenet")
    assert path == str(tmp_path / "keras" / "models" / model_module.IMAGENET_WEIGHTS_FILE)
    assert Path(path).read_bytes() == WEIGHTS
    # staged in segedge's cache, then moved: no file stays (its marker may still name the staged file:
    # train deletes it by itself, not through download.discard)
    assert [name for name in _leftovers(cache_dir()) if name != download_module.MARKER] == []
    assert model_module.resolve_encoder_weights("imagenet") == path and len(served.requests) == 1


@pytest.mark.parametrize("fault", ["pinned sha256", "server md5", "not hdf5"])
def test_bad_imagenet_weights_fail_in_one_line_and_are_not_kept(fault, served, tmp_path, monkeypatch):
    body = b"<html>captive portal</html>" if fault == "not hdf5" else WEIGHTS
    header = _goog_md5(b"other bytes") if fault == "server md5" else _goog_md5(body)
    served.add(f"/k/{model_module.IMAGENET_WEIGHTS_FILE}", body, **{"x-goog-hash": header})
    monkeypatch.setenv("SEGEDGE_WEIGHTS_URL", served.base + "/k")
    if fault == "pinned sha256":
        monkeypatch.setattr(model_module, "IMAGENET_WEIGHTS_CHECKSUM", Checksum("sha256", "f" * 64))
    with pytest.raises(DownloadError) as caught:
        model_module.resolve_encoder_weights("imagenet")
    message = caught.value.message
    assert "\n" not in message and message.startswith("--encoder-weights imagenet: ")
    assert {"pinned sha256": "sha256 is", "server md5": "md5 is", "not hdf5": "HDF5"}[fault] in message
    assert "--encoder-weights PATH" in message
    assert not (tmp_path / "keras" / "models" / model_module.IMAGENET_WEIGHTS_FILE).exists()
    assert [name for name in _leftovers(cache_dir()) if name != download_module.MARKER] == []


def test_imagenet_offline_prints_one_line_with_url_cache_and_alternative(closed_port, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SEGEDGE_WEIGHTS_URL", f"http://127.0.0.1:{closed_port}/mobilenet_v2/")

    @user_errors  # what 'segedge train --encoder-weights imagenet' does before it imports TensorFlow
    def train_start() -> None:
        model_module.resolve_encoder_weights("imagenet")

    with pytest.raises(typer.Exit) as stopped:
        train_start()
    assert stopped.value.exit_code == 3
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    cached = tmp_path / "keras" / "models" / model_module.IMAGENET_WEIGHTS_FILE
    assert len(lines) == 1 and lines[0].startswith("error: --encoder-weights imagenet: "), lines
    assert f"http://127.0.0.1:{closed_port}/mobilenet_v2/{model_module.IMAGENET_WEIGHTS_FILE}" in lines[0]
    assert str(cached) in lines[0] and "--encoder-weights PATH" in lines[0] and "refused" in lines[0]
    assert not cached.exists()


def test_default_weights_url_is_the_one_keras_uses():
    import importlib.util
    import re

    spec = importlib.util.find_spec("keras")  # read Keras' source, don't import it (that imports TensorFlow)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("keras is not installed")
    source = Path(next(iter(spec.submodule_search_locations))) / "src" / "applications" / "mobilenet_v2.py"
    text = source.read_text()
    match = re.search(r'BASE_WEIGHT_PATH = \(\s*"([^"]+)"\s*\)', text)
    assert match and model_module.IMAGENET_WEIGHTS_BASE_URL == match.group(1)
    assert '"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_"' in text and 'f"{float(alpha)}_{rows}_no_top.h5"' in text
    alpha, rows = 1.0, 224  # the no-top file Keras names for the encoder segedge builds
    expected = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{rows}_no_top.h5"
    assert model_module.IMAGENET_WEIGHTS_FILE == expected


def test_mobilenet_v3_weights_keep_keras_url_and_md5s():
    """segedge pins what Keras pins for the V3 no-top files: the same folder, names and md5s."""
    import importlib.util
    import re

    spec = importlib.util.find_spec("keras")  # read Keras' source, don't import it (that imports TensorFlow)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("keras is not installed")
    text = (Path(next(iter(spec.submodule_search_locations))) / "src" / "applications" / "mobilenet_v3.py").read_text()
    match = re.search(r'BASE_WEIGHT_PATH = \(\s*"([^"]+)"\s*\)', text)
    assert match and model_module.V3_WEIGHTS_BASE_URL == match.group(1)
    assert 'f"weights_mobilenet_v3_{model_name}_no_top_v2.h5"' in text
    for (encoder, width), md5 in model_module.V3_NO_TOP_MD5.items():
        size = encoder.rsplit("_", 1)[1]
        keras_pair = re.search(rf'"{size}_224_{width}_float": \(\s*"(\w+)",\s*"(\w+)",', text)
        assert keras_pair and keras_pair.group(2) == md5, (encoder, width)


def test_a_mobilenet_v3_download_that_fails_keras_md5_is_refused(served, tmp_path, monkeypatch):
    name = model_module.imagenet_weights_file(1.0, "mobilenet_v3_small")
    served.add(f"/k/{name}", WEIGHTS, **{"x-goog-hash": _goog_md5(WEIGHTS)})  # the server vouches; the pin does not
    monkeypatch.setenv("SEGEDGE_WEIGHTS_URL", served.base + "/k")
    with pytest.raises(DownloadError) as caught:
        model_module.resolve_encoder_weights("imagenet", 1.0, "mobilenet_v3_small")
    message = caught.value.message
    pinned = model_module.V3_NO_TOP_MD5[("mobilenet_v3_small", 1.0)]
    assert "\n" not in message and "md5 is" in message and pinned in message
    assert not (tmp_path / "keras" / "models" / name).exists()
    assert [n for n in _leftovers(cache_dir()) if n != download_module.MARKER] == []


# -- failure wording ---------------------------------------------------------------------------------

def test_dns_timeout_and_disk_full_are_named(served, tmp_path, monkeypatch):
    reason = download_module._network_reason
    assert "cannot resolve host host.example" in reason("http://host.example/x", socket.gaierror(-2, "NXDOMAIN"), 5)
    assert "no answer from host.example within 5 s" in reason("http://host.example/x", TimeoutError(), 5)

    url = served.add("/big.bin", b"x" * 5000)
    real_open = open

    class Full(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    def full_open(path, mode="r", *args, **kwargs):
        return Full() if "b" in mode and ("w" in mode or "a" in mode) else real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(download_module, "open", full_open, raising=False)
    with pytest.raises(OutputError) as caught:
        download_module.download(url, tmp_path / "dl" / "big.bin", checksum=None, hint="try --from FILE")
    assert "the disk is full" in caught.value.message and "\n" not in caught.value.message
    # pointing SEGEDGE_CACHE at a disk with the user's own files is safe: segedge deletes only what it lists
    assert "SEGEDGE_CACHE" in caught.value.message and download_module.MARKER in caught.value.message
    assert not (tmp_path / "dl" / "big.bin").exists() and _leftovers(tmp_path / "dl") == []


def test_cli_names_match_the_source_registry():
    from segedge.commands.data import FetchName

    assert sorted(member.value for member in FetchName) == sorted(fetch_module.SOURCES)


def test_sbd_mat_files_that_are_not_class_masks_are_named(tmp_path):
    sio = pytest.importorskip("scipy.io")
    from segedge.data.sbd import read_cls_mat
    from segedge.util.errors import DataError

    sio.savemat(tmp_path / "inst.mat", {"GTinst": {"Segmentation": np.zeros((4, 4), np.uint8)}})
    sio.savemat(tmp_path / "labels.mat", {"GTcls": {"Segmentation": np.full((4, 4), 40, np.uint8)}})
    (tmp_path / "junk.mat").write_bytes(b"not matlab at all" * 20)
    for name, wording in (("inst", "no GTcls.Segmentation"), ("labels", "outside 0-20"), ("junk", "not a readable")):
        with pytest.raises(DataError) as caught:
            read_cls_mat(tmp_path / f"{name}.mat")
        assert caught.value.message.startswith(str(tmp_path / f"{name}.mat")) and wording in caught.value.message
    sio.savemat(tmp_path / "ok.mat", {"GTcls": {"Segmentation": np.array([[0, 15], [20, 0]], np.uint8)}})
    assert read_cls_mat(tmp_path / "ok.mat").tolist() == [[0, 15], [20, 0]]


def test_sbd_without_scipy_names_the_extra_before_downloading(served, voc_source, tmp_path, monkeypatch):
    import importlib

    from segedge.util.errors import MissingExtraError

    def no_scipy(name, *args, **kwargs):
        if name.split(".")[0] == "scipy":
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    real_import = importlib.import_module
    monkeypatch.setattr(importlib, "import_module", no_scipy)
    _register(monkeypatch, "sbd", served.add("/benchmark.tgz", b"unused"), b"unused")
    with pytest.raises(MissingExtraError, match=r'segedge\[data\]'):
        fetch_module.fetch("sbd", voc_source)
    assert served.requests == []
