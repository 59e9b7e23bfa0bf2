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
