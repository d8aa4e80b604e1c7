import pytest

from shelfrank.evaluate.report import Section, markdown_table, plot_bars, plot_curves, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_report_links_the_plots_it_wrote(tmp_path):
    plot_curves({"true": ([0, 1, 2], [1.0, 0.6, 0.4]), "learned": ([0, 1, 2], [1.0, 0.55, 0.42])},
                tmp_path / "position_curve.png", "examination", "position", "P(examined)")
    plot_bars({"logged": 0.8, "model": 1.1, "oracle": 1.6}, tmp_path / "page_value.png", "page value", "clicks")
    path = write_report(tmp_path, "evaluation", [
        Section("Position bias", "Learned against true.", figures=["position_curve.png"]),
        Section("Page value", table=[["policy", "clicks"], ["logged", 0.8], ["model", 1.1]],
                figures=["page_value.png"]),
    ])
    text = path.read_text()
    assert "![position curve](position_curve.png)" in text
    assert "| logged | 0.8 |" in text
    for png in ("position_curve.png", "page_value.png"):
        data = (tmp_path / png).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5_000


def test_a_section_naming_a_missing_figure_fails_loudly(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        write_report(tmp_path, "r", [Section("s", figures=["nope.png"])])


def test_markdown_table_escapes_pipes_and_formats_floats():
    assert markdown_table([["a", "b"], ["x|y", 0.123456]]) == "| a | b |\n|---|---|\n| x\\|y | 0.1235 |"
