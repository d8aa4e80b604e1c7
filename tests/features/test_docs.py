"""docs/features.md lists exactly the declared features."""

from pathlib import Path

from shelfrank.features.definitions import features_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "features.md"


def test_the_feature_table_in_the_docs_is_generated_from_the_declarations():
    assert features_markdown() in DOC.read_text(), (
        "docs/features.md is out of date: paste shelfrank.features.definitions.features_markdown() into it")
