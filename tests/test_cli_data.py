from typer.testing import CliRunner

from segedge import __version__
from segedge.cli import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_synth_then_check_exits_zero(tmp_path):
    out = tmp_path / "d"
    assert runner.invoke(app, ["data", "synth", str(out), "--images", "6", "--size", "48"]).exit_code == 0
    result = runner.invoke(app, ["data", "check", str(out)])
    assert result.exit_code == 0, result.output
    assert "train" in result.output and "ok" in result.output


def test_check_on_corrupt_copy_exits_nonzero_naming_file(synth_copy):
    victim = sorted((synth_copy / "JPEGImages").iterdir())[0]
    victim.write_bytes(b"")
    result = runner.invoke(app, ["data", "check", str(synth_copy)])
    assert result.exit_code != 0
    assert victim.name in result.output


def test_synth_refuses_existing_folder_without_overwrite(synth_copy):
    result = runner.invoke(app, ["data", "synth", str(synth_copy), "--images", "4"])
    assert result.exit_code != 0 and "--overwrite" in result.output


def test_check_without_masks_says_no_pixels_were_counted(synth_root, tmp_path):
    """A pairs folder with images only: one clear line, not a "class pixels:" header over nothing."""
    images = tmp_path / "photos" / "images"
    images.mkdir(parents=True)
    for source in sorted((synth_root / "JPEGImages").iterdir())[:2]:
        (images / source.name).write_bytes(source.read_bytes())
    result = runner.invoke(app, ["data", "check", str(tmp_path / "photos")])
    assert result.exit_code == 3
    lines = result.output.splitlines()
    assert "class pixels:" not in lines
    assert "class pixels: none counted (no mask could be read)" in lines
    assert "masks: not found" in result.output


def test_check_shows_the_folder_without_dot_dot_detours(synth_root, tmp_path, monkeypatch):
    (tmp_path / "flow").mkdir()
    (tmp_path / "own").symlink_to(synth_root, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["data", "check", "flow/../own"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("dataset: own (voc layout")
    missing = runner.invoke(app, ["data", "check", "flow/../gone/./x"])
    assert missing.exit_code == 3 and "error: gone/x: " in missing.output and ".." not in missing.output
    # after a symlink, '..' is the link target's parent: the path is kept as typed, never another folder
    beyond = runner.invoke(app, ["data", "check", "own/../gone"])
    assert beyond.exit_code == 3 and "error: own/../gone: " in beyond.output
