"""Evaluation reports: a Markdown file with PNG plots, readable without the CLI.

A report is a list of sections; each section has a heading, text, an optional table
(rows of cells, first row the header) and optional figures written next to the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


@dataclass
class Section:
    heading: str
    text: str = ""
    table: Sequence[Sequence[object]] | None = None
    figures: list[str] = field(default_factory=list)  # file names inside the report folder


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def markdown_table(rows: Sequence[Sequence[object]]) -> str:
    header, *body = rows
    lines = ["| " + " | ".join(_cell(c) for c in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def write_report(folder: Path, title: str, sections: Sequence[Section], preamble: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    parts = [f"# {title}", ""]
    if preamble:
        parts += [preamble, ""]
    path = folder / "report.md"
    path.write_text("\n".join(parts + section_lines(sections, folder)))
    return path


def append_sections(report_path: Path, sections: Sequence[Section]) -> None:
    """Append sections to a report written by write_report (their figures sit next to it)."""
    parts = [report_path.read_text().rstrip(), ""]
    report_path.write_text("\n".join(parts + section_lines(sections, report_path.parent)))


def section_lines(sections: Sequence[Section], folder: Path) -> list[str]:
    """The Markdown lines of sections; a figure must already be written in `folder`."""
    parts: list[str] = []
    for section in sections:
        parts += [f"## {section.heading}", ""]
        if section.text:
            parts += [section.text, ""]
        if section.table:
            parts += [markdown_table(section.table), ""]
        for figure in section.figures:
            if not (folder / figure).is_file():
                raise FileNotFoundError(f"figure {figure} of section {section.heading!r} was not written")
            parts += [f"![{Path(figure).stem.replace('_', ' ')}]({figure})", ""]
    return parts


def plot_curves(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: Path,
    title: str,
    xlabel: str,
    ylabel: str,
) -> Path:
    """Several named (x, y) curves on one axis, e.g. examination by position: learned vs true."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for name, (x, y) in curves.items():
        ax.plot(np.asarray(x), np.asarray(y), marker="o", label=name)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_bars(values: Mapping[str, float], path: Path, title: str, ylabel: str) -> Path:
    """One bar per policy or model, labelled with its value."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    names = list(values)
    bars = ax.bar(names, [values[n] for n in names], color="#4c72b0")
    ax.bar_label(bars, fmt="%.3g")
    ax.set(title=title, ylabel=ylabel)
    ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
