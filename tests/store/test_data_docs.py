"""docs/data.md stays true: its field tables match contracts.py and its CSV examples ingest cleanly."""

from __future__ import annotations

import re
from pathlib import Path

from shelfrank.contracts import CONTRACTS, INGEST_ORDER, Field
from shelfrank.store.ingest import ingest_folder

DATA_MD = Path(__file__).resolve().parents[2] / "docs" / "data.md"


def constraints(f: Field) -> str:
    out = []
    if not f.nullable:
        out.append("not empty")
    if f.min_value is not None:
        out.append(f">= {f.min_value:g}")
    if f.positive:
        out.append("> 0")
    if f.max_value is not None:
        out.append(f"<= {f.max_value:g}")
    if f.choices:
        out.append("one of " + ", ".join(f"`{c}`" for c in f.choices))
    if f.references:
        out.append(f"must exist in `{f.references}`")
    return "; ".join(out)


def field_row(f: Field) -> str:
    """The Markdown table row docs/data.md has for a field (regenerate the tables with this)."""
    description = f.description.replace("|", "\\|")
    return f"| `{f.name}` | {f.type} | {'yes' if f.required else ''} | {constraints(f)} | {description} |"


def test_field_tables_match_the_contracts():
    text = DATA_MD.read_text()
    for name in INGEST_ORDER:
        section = text.split(f"### {name}\n", 1)[1].split("\n### ", 1)[0]
        rows = [line for line in section.splitlines() if line.startswith("| `")]
        assert rows == [field_row(f) for f in CONTRACTS[name].fields], name


def test_csv_examples_ingest_without_rejects(store, tmp_path):
    examples = re.findall(r"`(\w+\.csv)`:\n```csv\n(.*?)```", DATA_MD.read_text(), re.S)
    assert sorted(name for name, _ in examples) == sorted(f"{k}.csv" for k in INGEST_ORDER)
    for name, body in examples:
        (tmp_path / name).write_text(body)
    reports = ingest_folder(store, tmp_path)
    assert {r.kind: (r.rejected, r.warnings) for r in reports} == {k: (0, []) for k in INGEST_ORDER}
    assert all(r.accepted == r.rows_read for r in reports)
