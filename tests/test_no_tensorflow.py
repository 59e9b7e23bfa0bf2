"""The edge install has no TensorFlow: prove the light modules never import it."""

import subprocess
import sys
import textwrap

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys
    BLOCKED = {"tensorflow", "keras", "tf2onnx", "tf_keras", "tensorflow_cpu"}
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"blocked in this test: {name}")
            return None
    sys.meta_path.insert(0, Block())
    """
)


def run_blocked(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120)


def test_light_modules_import_with_tensorflow_blocked():
    result = run_blocked(
        """
        import segedge.cli, segedge.data, segedge.contract.labels, segedge.contract.preprocess
        import segedge.contract.manifest
        import segedge.contract.metrics, segedge.contract.targets, segedge.data.synth, segedge.data.check
        import sys
        assert not any(m.split(".")[0] in {"tensorflow", "keras", "tf2onnx"} for m in sys.modules)
        """
    )
    assert result.returncode == 0, result.stderr


def test_every_command_help_works_without_tensorflow():
    """`segedge --help`, `segedge predict --help` and every other command's help."""
    result = run_blocked(
        """
        import sys
        import typer.main
        from typer.testing import CliRunner
        from segedge.cli import app
        commands = typer.main.get_command(app).commands
        for args in [["--help"]] + [[name, "--help"] for name in commands]:
            r = CliRunner().invoke(app, args)
            assert r.exit_code == 0, (args, r.output)
        assert "tensorflow" not in sys.modules
        """
    )
    assert result.returncode == 0, result.stderr + result.stdout
