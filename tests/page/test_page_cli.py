"""`shelfrank page` on the shared tiny store."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from shelfrank.cli import app


def _config(tiny_world, tmp_path):
    config = tmp_path / "shelfrank.toml"
    config.write_text(f'[store]\ndata_dir = "{tiny_world["data_dir"]}"\n')
    return ["--config", str(config)]


def test_page_prints_the_api_shape_as_json(tiny_world, tmp_path):
    result = CliRunner().invoke(app, [*_config(tiny_world, tmp_path), "page", "u1", "--json", "--rows", "4"])
    assert result.exit_code == 0, result.output
    page = json.loads(result.output)
    assert page["user_id"] == "u1" and len(page["rows"]) == 4
    assert all(item["propensity"] > 0 for row in page["rows"] for item in row["items"])


def test_an_unknown_user_gets_the_new_user_page_as_a_table(tiny_world, tmp_path):
    result = CliRunner().invoke(app, [*_config(tiny_world, tmp_path), "page", "never-seen-user", "--rows", "3"])
    assert result.exit_code == 0, result.output
    assert "new user" in result.output


def test_bad_options_are_one_clear_error(tiny_world, tmp_path):
    for args, message in ((["--pipeline", "nope"], "unknown pipeline"), (["--at", "yesterday"], "not an ISO time")):
        result = CliRunner().invoke(app, [*_config(tiny_world, tmp_path), "page", "u1", *args])
        assert result.exit_code == 2, result.output
        assert message in result.output
