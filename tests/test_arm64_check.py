"""The arm64 check's cheap parts: its skip logic (no emulation) and the mask comparison it ends with.

The check itself (scripts/arm64_check.sh) needs root, qemu and minutes of emulation; CI runs it
from .ci/run. Here the script runs with stand-in `id`/`uname` programs first on PATH, so each
"this machine cannot run the check" branch is taken for real and must end in exit 77 and one line.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "arm64_check.sh"
BASH = shutil.which("bash")


def _fake(bin_dir: Path, name: str, output: str) -> None:
    """A stand-in command that prints `output`, like `id -u` or `uname -m` would on another machine."""
    path = bin_dir / name
    path.write_text(f"#!{BASH}\necho {output}\n")
    path.chmod(0o755)


def _run(bin_dir: Path, home: Path, path: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path, "HOME": str(home)}
    return subprocess.run([BASH, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False)


def _assert_skipped(result: subprocess.CompletedProcess[str], reason: str, home: Path) -> None:
    assert result.returncode == 77, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("skipped: ") and reason in lines[0], result.stdout
    assert result.stderr == ""
    assert not (home / ".cache").exists()  # a skip builds and caches nothing


def _bin_with(tmp_path: Path, **outputs: str) -> Path:
    """A folder of stand-in commands (``id="0"``: `id -u` prints 0) to put first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, output in outputs.items():
        _fake(bin_dir, name, output)
    return bin_dir


@pytest.mark.parametrize(("outputs", "own_path_only", "reason"), [
    ({"id": "1000"}, False, "needs root"),
    ({"id": "0", "uname": "aarch64"}, False, "x86-64 host; this is aarch64"),
    # root on an x86-64 machine whose PATH has neither the tools nor apt-get to install them
    ({"id": "0", "uname": "x86_64"}, True,
     "mmdebstrap qemu-user-static binfmt-support arch-test missing and no apt-get"),
], ids=["not-root", "arm-host", "no-tools-no-apt"])
def test_a_machine_that_cannot_run_the_check_is_skipped_in_one_line(tmp_path: Path, outputs, own_path_only,
                                                                   reason) -> None:
    bin_dir = _bin_with(tmp_path, **outputs)
    result = _run(bin_dir, tmp_path, str(bin_dir) if own_path_only else f"{bin_dir}:{os.environ['PATH']}")
    _assert_skipped(result, reason, tmp_path)


def _compare_masks():
    spec = importlib.util.spec_from_file_location("compare_masks", REPO / "scripts" / "compare_masks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["compare_masks"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _save_mask(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.frombytes("P", labels.shape[::-1], labels.astype(np.uint8).tobytes())
    image.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)  # palette colours must not matter, only indices
    image.save(path)


@pytest.mark.parametrize(("changed", "expected_rc"), [(0, 0), (10, 0), (11, 1)])
def test_mask_comparison_bound(tmp_path: Path, changed: int, expected_rc: int, capsys) -> None:
    # two 100x100 masks per side: 20,000 pixels, so a 99.95 % bound allows exactly 10 differing ones
    rng = np.random.default_rng(0)
    for stem in ("a", "b"):
        labels = rng.integers(0, 21, size=(100, 100))
        _save_mask(tmp_path / "x86" / "int8" / f"{stem}.png", labels)
        if stem == "b":
            labels = labels.copy()
            flat = labels.reshape(-1)
            flat[:changed] = (flat[:changed] + 1) % 21
        _save_mask(tmp_path / "arm" / "int8" / f"{stem}.png", labels)
    rc = _compare_masks().main([str(tmp_path / "x86"), str(tmp_path / "arm"), "--min-equal", "0.9995"])
    out = capsys.readouterr().out
    assert rc == expected_rc, out
    assert f"2 masks, 20000 pixels, {20000 - changed} equal" in out


def test_mask_comparison_fails_on_a_missing_mask(tmp_path: Path, capsys) -> None:
    labels = np.zeros((8, 8), dtype=np.uint8)
    _save_mask(tmp_path / "x86" / "onnx-int8" / "a.png", labels)
    _save_mask(tmp_path / "x86" / "onnx-int8" / "b.png", labels)
    _save_mask(tmp_path / "arm" / "onnx-int8" / "a.png", labels)
    rc = _compare_masks().main([str(tmp_path / "x86"), str(tmp_path / "arm")])
    out = capsys.readouterr().out
    assert rc == 1
    assert "b.png only in" in out and "FAIL" in out


def test_a_folder_at_the_root_path_that_the_check_did_not_build_is_refused_and_kept(tmp_path: Path) -> None:
    """SEGEDGE_ARM64_ROOT pointing at a user's folder: one error line, exit 1, nothing removed."""
    bin_dir = _bin_with(tmp_path, id="0", uname="x86_64")
    theirs = tmp_path / "my-folder"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path), "SEGEDGE_ARM64_ROOT": str(theirs)}
    result = subprocess.run([BASH, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(theirs) in lines[0], result.stdout
    assert (theirs / "notes.txt").read_text() == "mine"


def _fetch_check_text() -> str:
    """The Python the check runs inside the arm64 root for its fetch-voc step (a heredoc in the script)."""
    match = re.search(r"cat >\"\$WORK/fetch_check.py\" <<'PY'\n(.*?)\nPY\n", SCRIPT.read_text(), re.S)
    assert match, "scripts/arm64_check.sh has no fetch_check.py heredoc"
    return match.group(1)


@pytest.mark.parametrize("filters", [True, False], ids=["with-filters", "without-filters"])
def test_the_fetch_step_passes_here_with_and_without_tarfile_filters(tmp_path: Path, filters: bool) -> None:
    """The arm64 root's fetch step, on the host: unpack a VOC-layout tar made as the script makes it
    (`tar` of a synth VOCdevkit/VOC2012), keep it, refuse the unsafe archives. Without filters stands in
    for Bookworm's Python 3.11.2."""
    tar = shutil.which("tar")
    if tar is None:
        pytest.skip("no tar program")
    from segedge.data.synth import SynthConfig, generate

    generate(tmp_path / "src" / "VOCdevkit" / "VOC2012", SynthConfig(images=12, size=48, seed=1))
    archive = tmp_path / "voc-tiny.tar"
    subprocess.run([tar, "-C", str(tmp_path / "src"), "--exclude=.segedge.json", "-cf", str(archive), "VOCdevkit"],
                   check=True)
    check = tmp_path / "fetch_check.py"
    check.write_text(_fetch_check_text())
    prelude = "" if filters else (  # Python 3.11.2's tarfile: no filters, an extract() without filter=
        "import tarfile\n"
        "for name in ('data_filter', 'FilterError'): delattr(tarfile, name)\n"
        "del tarfile.TarInfo.replace\n"
        "real = tarfile.TarFile.extract\n"
        "def extract(self, member, path='', set_attrs=True, *, numeric_owner=False):\n"
        "    return real(self, member, path, set_attrs, numeric_owner=numeric_owner, filter='fully_trusted')\n"
        "tarfile.TarFile.extract = extract\n")
    runner = f"{prelude}import runpy, sys\nsys.argv = sys.argv[1:]\nrunpy.run_path(sys.argv[0], run_name='__main__')\n"
    dest = tmp_path / "voc" / "VOC2012"
    env = {**os.environ, "SEGEDGE_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([sys.executable, "-c", runner, str(check), str(archive), str(dest)], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"tarfile extraction filters: {filters}" in result.stdout
    assert result.stdout.count(": refused: ") == 4 and "fetch check passed" in result.stdout
    assert "\nok\n" in result.stdout  # the end of fetch's `data check` summary: the dataset opens
    assert archive.is_file() and (dest / "JPEGImages" / "synth_000000.jpg").is_file()
    assert list((tmp_path / "voc" / "unsafe" / "outside").iterdir()) == []
