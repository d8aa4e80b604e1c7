"""Every command answers --help, and configuration errors are one line, not a traceback."""

import pytest
from typer.testing import CliRunner

from shelfrank.cli import app

runner = CliRunner()
COMMANDS = sorted(c.name or c.callback.__name__ for c in app.registered_commands)


def test_the_cli_has_the_foundation_commands():
    assert {"config", "simulate", "ingest", "export", "status", "demo"} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_config_shows_effective_values(tmp_path):
    result = runner.invoke(app, ["--data-dir", str(tmp_path / "d"), "config"])
    assert result.exit_code == 0, result.output
    assert "store.data_dir" in result.output
    assert "simulate.scale" in result.output


def test_a_bad_configuration_file_is_one_clear_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[store]\nthreads = -3\n")
    result = runner.invoke(app, ["--config", str(bad), "config"])
    assert result.exit_code == 2
    assert "store.threads" in result.output
    assert "Traceback" not in result.output


def test_a_missing_configuration_file_is_named(tmp_path):
    result = runner.invoke(app, ["--config", str(tmp_path / "nope.toml"), "config"])
    assert result.exit_code == 2
    assert "nope.toml" in result.output
