"""A small Markdown renderer for the evaluation report: headings, paragraphs, pipe tables,
images, lists, code blocks, quotes and inline code / emphasis / links.

All text is HTML-escaped first; images only point inside the report folder (``image_src``
maps a relative name to its URL, anything else shows the alt text): the page makes no
external request.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from urllib.parse import quote

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_LIST = re.compile(r"^\s*(?:[-*+]|(\d+)[.)])\s+(.*)$")
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)(?:\s+&quot;[^)]*&quot;)?\)")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_CODE = re.compile(r"`([^`]+)`")
_STRONG = re.compile(r"\*\*(.+?)\*\*")
_EM = re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])")
_SAFE_LINK = re.compile(r"^(https?://|#|[A-Za-z0-9_./-]+$)")


def relative_file(src: str) -> str | None:
    """`src` as a path inside the report folder, or None (absolute, external, or climbing out)."""
    src = html.unescape(src)
    if not src or src.startswith(("/", "\\")) or ":" in src or "\\" in src:
        return None
    parts = src.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    return src


def report_image_src(prefix: str) -> Callable[[str], str | None]:
    def image_src(src: str) -> str | None:
        name = relative_file(src)
        return None if name is None else prefix + quote(name)

    return image_src


def render_markdown(text: str, image_src: Callable[[str], str | None]) -> str:
    lines = text.replace("\r\n", "\n").split("\n")
    out: list[str] = []
    paragraph: list[str] = []
    used_ids: set[str] = set()

    def inline(raw: str) -> str:
        # Code spans first (their text stays literal), then images, links and emphasis.
        codes: list[str] = []

        def keep_code(m: re.Match[str]) -> str:
            codes.append(f"<code>{m.group(1)}</code>")
            return f"\x00{len(codes) - 1}\x00"

        s = _CODE.sub(keep_code, html.escape(raw, quote=True))

        def image(m: re.Match[str]) -> str:
            src = image_src(m.group(2))
            if src is None:
                return f'<span class="missing-image">[{m.group(1)}]</span>'
            return f'<img src="{html.escape(src, quote=True)}" alt="{m.group(1)}" loading="lazy">'

        def link(m: re.Match[str]) -> str:
            href = html.unescape(m.group(2))
            if not _SAFE_LINK.match(href):
                return m.group(1)
            return f'<a href="{html.escape(href, quote=True)}">{m.group(1)}</a>'

        s = _IMAGE.sub(image, s)
        s = _LINK.sub(link, s)
        s = _STRONG.sub(r"<strong>\1</strong>", s)
        s = _EM.sub(r"<em>\1</em>", s)
        return re.sub("\x00(\\d+)\x00", lambda m: codes[int(m.group(1))], s)

    def flush() -> None:
        if not paragraph:
            return
        body = " ".join(p.strip() for p in paragraph)
        paragraph.clear()
        image = _IMAGE.fullmatch(html.escape(body, quote=True))
        if image:  # a figure on its own line
            alt = image.group(1)
            out.append(f"<figure>{inline(body)}<figcaption>{alt}</figcaption></figure>")
        else:
            out.append(f"<p>{inline(body)}</p>")

    def cells(line: str) -> list[str]:
        line = line.strip()
        if line.startswith("|"):
            line = line[1:]
        if line.endswith("|") and not line.endswith("\\|"):
            line = line[:-1]
        return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)]

    def slug(title: str) -> str:
        base = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"
        name, k = base, 2
        while name in used_ids:
            name, k = f"{base}-{k}", k + 1
        used_ids.add(name)
        return name

    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            code: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                code.append(lines[i])
                i += 1
            out.append(f"<pre><code>{html.escape(chr(10).join(code))}</code></pre>")
            i += 1
            continue
        heading = _HEADING.match(line)
        if heading:
            flush()
            level, title = len(heading.group(1)), heading.group(2)
            out.append(f'<h{level} id="{slug(title)}">{inline(title)}</h{level}>')
            i += 1
            continue
        if "|" in line and i + 1 < len(lines) and _TABLE_RULE.match(lines[i + 1]) and "|" in lines[i + 1]:
            flush()
            header = cells(line)
            rows: list[list[str]] = []
            i += 2
            while i < len(lines) and "|" in lines[i] and lines[i].strip():
                rows.append(cells(lines[i]))
                i += 1
            head = "".join(f'<th scope="col">{inline(c)}</th>' for c in header)
            body = "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in rows)
            out.append(f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
                       "</table></div>")
            continue
        item = _LIST.match(line)
        if item and not paragraph:
            ordered = item.group(1) is not None
            tag = "ol" if ordered else "ul"
            entries: list[str] = []
            while i < len(lines) and (m := _LIST.match(lines[i])) and (m.group(1) is not None) == ordered:
                entries.append(f"<li>{inline(m.group(2))}</li>")
                i += 1
            out.append(f"<{tag}>{''.join(entries)}</{tag}>")
            continue
        if stripped.startswith(">"):
            flush()
            quoted: list[str] = []
            while i < len(lines) and lines[i].strip().startswith(">"):
                quoted.append(lines[i].strip()[1:].strip())
                i += 1
            out.append(f"<blockquote><p>{inline(' '.join(quoted))}</p></blockquote>")
            continue
        if stripped in ("---", "***", "___"):
            flush()
            out.append("<hr>")
        elif not stripped:
            flush()
        else:
            paragraph.append(line)
        i += 1
    flush()
    return "\n".join(out)
