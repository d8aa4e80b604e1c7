"""The report's Markdown renderer: the report's own shapes, escaping, and images only from inside the folder."""

from __future__ import annotations

from shelfrank.evaluate.report import Section, markdown_table
from shelfrank.serve.web.markdown import relative_file, render_markdown, report_image_src

SRC = report_image_src("/report/files/")


def test_a_written_report_renders_headings_tables_and_figures():
    text = "\n".join([
        "# Evaluation", "", "Some **bold** and `code`.", "", "## Page value", "",
        markdown_table([["pipeline", "value | ci"], ["default", 1.0], ["popularity", 0.62]]), "",
        "![page value](page_value.png)", "",
    ])
    html = render_markdown(text, SRC)
    assert '<h1 id="evaluation">Evaluation</h1>' in html and '<h2 id="page-value">' in html
    assert "<strong>bold</strong>" in html and "<code>code</code>" in html
    assert "<th scope=\"col\">value | ci</th>" in html and html.count("<tr>") == 3
    assert '<img src="/report/files/page_value.png" alt="page value"' in html
    assert Section("x").figures == []


def test_html_in_the_report_is_escaped():
    html = render_markdown("# <script>alert(1)</script>\n\n<img src=x onerror=alert(1)>", SRC)
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;" in html


def test_images_outside_the_report_folder_are_not_loaded():
    html = render_markdown("![a](../secret.png) ![b](https://example.com/b.png) ![c](/etc/c.png) ![d](ok/d.png)", SRC)
    assert html.count("<img") == 1 and 'src="/report/files/ok/d.png"' in html
    assert relative_file("..") is None and relative_file("a/../../b.png") is None
    assert relative_file("C:\\x.png") is None and relative_file("plots/x.png") == "plots/x.png"


def test_unsafe_links_keep_only_their_text():
    html = render_markdown("[x](javascript:alert) [y](https://shelfrank.dev/docs)", SRC)
    assert "javascript" not in html and 'href="https://shelfrank.dev/docs"' in html
