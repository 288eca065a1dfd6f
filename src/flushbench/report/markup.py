"""One document, two renderings: GitHub Markdown and a self-contained HTML page.

Text passed in may use two bits of Markdown, ``code`` and **bold**; both renderings get them,
and everything else in it is text: run text (case ids, machine names, errors) comes from
files that may come from another machine. So every string is first made :func:`printable`
(line breaks become spaces, other control characters are shown escaped), then cut into code
spans, bold and plain text; plain text has every character Markdown or HTML would act on
escaped, a code span gets a fence longer than any run of backticks inside it. A stray
backtick or ``**`` in run text is then shown as itself, never as markup.
Output depends only on what is added, so unchanged input gives byte-identical files.
"""

from __future__ import annotations

import html
import numbers
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

CSS = """
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:1200px;padding:0 1rem;color:#222;line-height:1.45;overflow-wrap:break-word}
h1,h2,h3,h4{line-height:1.2;overflow-wrap:anywhere}
h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.5rem}
.scroll{overflow-x:auto;max-width:100%;margin:.6rem 0 1.2rem}
table{border-collapse:collapse;font-size:.85rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.nw{white-space:nowrap}
tr.diff td{background:#fff5d6}code{font-size:.85em;background:#f4f4f4;padding:0 .2em;
overflow-wrap:anywhere}td code{overflow-wrap:normal}
table.wide{min-width:60rem}table.wide td code{white-space:nowrap}
figure{margin:1rem 0 2rem;max-width:100%}figure img{max-width:100%;height:auto;
border:1px solid #eee;display:block}
.panels{display:grid;gap:.75rem;align-items:start;
grid-template-columns:repeat(auto-fill,minmax(min(100%,520px),1fr))}
figcaption{font-size:.85rem;color:#555;margin-top:.3rem}.note{color:#666;font-style:italic}
.good{color:#1a7f37;font-weight:600}.bad{color:#b42318;font-weight:600}
details{margin:.5rem 0 1rem}summary{cursor:pointer}td details{margin:0}
.cols{display:flex;gap:1.5rem;align-items:flex-start}.col{flex:1 1 0;min-width:0}
@media (max-width:900px){.cols{display:block}}
@media (max-width:600px){body{margin:1rem auto;padding:0 .6rem}h1{font-size:1.6rem}
h2{font-size:1.3rem}table{font-size:.78rem}th,td{padding:.2rem .35rem}}
""".strip()

# -- text from anywhere, shown as text ------------------------------------------------------

LINE_BREAKS = frozenset("\t\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")


def printable(value: Any) -> str:
    """``value`` as one line of visible text: tabs and line breaks become spaces; every other
    control, format or unassigned character (ESC, DEL, C1 codes, bidi overrides, lone
    surrogates) is shown escaped, as Python writes it (``\\x1b``, ``\\u202e``)."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or unicodedata.category(ch) == "Zs" else
                   " " if ch in LINE_BREAKS else _escaped(ch) for ch in text)


def _escaped(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 \
        else f"\\U{code:08x}"


# a code span (a run of backticks closed by a run of the same length) or **bold**
_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)|\*\*([^*]+)\*\*")
# what Markdown (GFM, with GitHub's $math$) acts on anywhere in a line; an underscore only
# where it is not between two letters or digits
_MD_SPECIAL = re.compile(r"[\\`*\[\]<>&|~$#]|(?<![^\W_])_|_(?![^\W_])")
# what it acts on at the start of a block: a list, quote, heading or thematic break
_MD_BLOCK_START = re.compile(r"^(\d{1,9})([.)])|^([-+=])")


def _spans(text: str) -> list[tuple[str, str]]:
    """(kind, text) pieces: "plain", "code" or "bold".

    Text wrapped whole in a backtick (or in ``**``) whose inside does not pair up is one code
    span (or bold): "`a`b`" is the code ``a`b`` (a table cell holding a label that has a
    backtick of its own), not "a" and a stray "b`"."""
    pieces, pos = [], 0
    for m in _SPAN.finditer(text):
        if m.start() > pos:
            pieces.append(("plain", text[pos:m.start()]))
        pieces.append(("code", m.group(2)) if m.group(1) else ("bold", m.group(3)))
        pos = m.end()
    if pos < len(text):
        pieces.append(("plain", text[pos:]))
    if any(kind == "plain" and ("`" in p or "**" in p) for kind, p in pieces):
        if len(text) > 2 and text[0] == text[-1] == "`" and text[1] != "`" != text[-2]:
            return [("code", text[1:-1])]
        if len(text) > 4 and text.startswith("**") and text.endswith("**"):
            return [("bold", text[2:-2])]
    return pieces


def md_text(text: str) -> str:
    """Plain text with every Markdown-active character backslash-escaped."""
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), text)


def md_code(text: str, in_table: bool = False) -> str:
    """A code span whose fence is longer than any run of backticks in ``text``. In a table a
    pipe ends the cell even inside code, so such text is shown escaped instead."""
    if not text:
        return ""
    if in_table and ("|" in text or "\\" in text):
        return md_text(text)
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    pad = " " if text[0] in "` " or text[-1] in "` " else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_inline(value: Any, in_table: bool = False, block: bool = False) -> str:
    """Text with ``code`` and **bold** as Markdown and nothing else active. ``block``: it
    starts a line (a paragraph, a list item), where a leading '-', '+', '=' or '1.' would
    start a list or a heading."""
    text = printable(value)
    if block:
        text = text.strip()
    out = []
    for kind, piece in _spans(text):
        if kind == "code":
            out.append(md_code(piece, in_table))
        elif kind == "bold":
            out.append(f"**{md_text(piece)}**")
        else:
            out.append(md_text(piece))
    joined = "".join(out)
    if block:
        joined = _MD_BLOCK_START.sub(lambda m: f"{m.group(1)}\\{m.group(2)}" if m.group(1)
                                     else f"\\{m.group(3)}", joined)
    return joined


def inline_html(value: Any) -> str:
    """Text with ``code`` and **bold** as HTML elements, everything else escaped."""
    out = []
    for kind, piece in _spans(printable(value)):
        text = html.escape(piece, quote=False)
        out.append(f"<code>{text}</code>" if kind == "code" else
                   f"<strong>{text}</strong>" if kind == "bold" else text)
    return "".join(out)


def _md_cell(value: Any) -> str:
    return md_inline(value.text if isinstance(value, Fold) else value, in_table=True)


def _is_num(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, (bool, np.bool_))


def anchor(text: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", printable(text).lower()).replace(" ", "-")


@dataclass(frozen=True)
class Fold:
    """A table cell shown folded in HTML (``<details>``: ``summary``, opened to ``text``) and
    as ``text`` in Markdown: a long list of case ids that would make a row tall."""

    summary: str
    text: str


SHORT = 12  # characters: a cell this short ('64 B', '0.819–0.856') is never broken


def _html_cell(value: Any) -> str:
    if isinstance(value, Fold):
        return (f"<td><details><summary>{inline_html(value.summary)}</summary>"
                f"{inline_html(value.text)}</details></td>")
    css = ["num"] if _is_num(value) else []
    if len("".join(p for _, p in _spans(printable(value)))) <= SHORT:
        css.append("nw")
    cls = f' class="{" ".join(css)}"' if css else ""
    return f"<td{cls}>{inline_html(value)}</td>"


class Doc:
    """Collects blocks and renders them as Markdown and as HTML."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.md: list[str] = [f"# {md_inline(title, block=True)}", ""]
        self.html: list[str] = [f"<h1>{inline_html(title)}</h1>"]

    def heading(self, level: int, text: str) -> None:
        self.md += [f"{'#' * level} {md_inline(text, block=True)}", ""]
        self.html.append(f'<h{level} id="{anchor(text)}">{inline_html(text)}</h{level}>')

    def para(self, text: str, css: str = "") -> None:
        self.md += [md_inline(text, block=True), ""]
        cls = f' class="{css}"' if css else ""
        self.html.append(f"<p{cls}>{inline_html(text)}</p>")

    def note(self, text: str) -> None:
        self.md += [f"*{md_inline(text, block=True)}*", ""]
        self.html.append(f'<p class="note">{inline_html(text)}</p>')

    def bullets(self, items: Iterable[str]) -> None:
        items = list(items)
        if not items:
            return
        self.md += [f"- {md_inline(i, block=True)}" for i in items] + [""]
        self.html.append("<ul>" + "".join(f"<li>{inline_html(i)}</li>" for i in items)
                         + "</ul>")

    def table(self, frame: pd.DataFrame, highlight: Sequence[bool] | None = None,
              collapse_after: int = 0, summary: str = "", wide: bool = False) -> None:
        """A table; rows flagged in ``highlight`` are marked; long ones fold in HTML. A
        ``wide`` one keeps a width to read it by on a phone, scrolling in its box instead of
        squeezing every column into a tall, narrow row."""
        if frame.empty:
            return
        cols = [str(c) for c in frame.columns]
        rows = [list(r) for r in frame.itertuples(index=False, name=None)]
        self.md.append("| " + " | ".join(_md_cell(c) for c in cols) + " |")
        self.md.append("|" + "|".join("---:" if all(_is_num(r[i]) for r in rows) else "---"
                                      for i in range(len(cols))) + "|")
        for i, row in enumerate(rows):
            cells = [_md_cell(v) for v in row]
            if highlight is not None and highlight[i]:
                cells = [f"**{c}**" if c else c for c in cells]
            self.md.append("| " + " | ".join(cells) + " |")
        self.md.append("")
        head = "".join(f"<th>{inline_html(c)}</th>" for c in cols)
        body = []
        for i, row in enumerate(rows):
            mark = ' class="diff"' if highlight is not None and highlight[i] else ""
            body.append(f"<tr{mark}>" + "".join(_html_cell(v) for v in row) + "</tr>")
        # a wide table scrolls inside its own box, never the page (a 390 px phone)
        table = '<table class="wide">' if wide else "<table>"
        block = (f'<div class="scroll">{table}<thead><tr>{head}</tr></thead>'
                 f"<tbody>{''.join(body)}</tbody></table></div>")
        if collapse_after and len(rows) > collapse_after:
            block = (f"<details><summary>{inline_html(summary or f'{len(rows)} rows')}"
                     f"</summary>{block}</details>")
        self.html.append(block)

    def figure(self, png: str, svg: str, alt: str, caption: str = "") -> None:
        """An image referenced relatively (PNG shown, SVG linked)."""
        self.figures([(png, svg)], alt, caption)

    def figures(self, images: Sequence[tuple[str, str]], alt: str, caption: str = "") -> None:
        """One figure of one or more panels, each a (PNG, SVG) pair referenced relatively.
        In HTML the panels sit in a grid: side by side on a wide screen, stacked on a phone."""
        if not images:
            return
        shown = printable(alt)
        many = len(images) > 1
        for k, (png, _) in enumerate(images, 1):
            self.md += [f"![{md_text(f'{shown} ({k} of {len(images)})' if many else shown)}]"
                        f"({png})", ""]
        if caption:
            links = ", ".join(f"[SVG{f' {k}' if many else ''}]({svg})"
                              for k, (_, svg) in enumerate(images, 1))
            self.md += [f"*{md_inline(caption, block=True)}* ({links})", ""]
        imgs = "".join(
            f'<a href="{html.escape(svg)}"><img src="{html.escape(png)}" '
            f'alt="{html.escape(f"{shown} ({k} of {len(images)})" if many else shown)}" '
            f'data-chart="{html.escape(png)}" loading="eager"></a>'
            for k, (png, svg) in enumerate(images, 1))
        self.html.append(
            "<figure>" + (f'<div class="panels">{imgs}</div>' if many else imgs)
            + (f"<figcaption>{inline_html(caption)} ({'click a panel' if many else 'click'} "
               "for SVG)</figcaption>" if caption else "") + "</figure>")

    def details(self, summary: str) -> None:
        """Fold what follows, up to :meth:`end_details`, under ``summary`` (HTML only;
        Markdown reads on in order)."""
        self.html.append(f"<details><summary>{inline_html(summary)}</summary>")

    def end_details(self) -> None:
        self.html.append("</details>")

    def columns(self) -> None:
        """Start two columns side by side (HTML only; Markdown reads on in order)."""
        self.html.append('<div class="cols"><div class="col">')

    def next_column(self) -> None:
        self.html.append('</div><div class="col">')

    def end_columns(self) -> None:
        self.html.append("</div></div>")

    def raw_html(self, block: str) -> None:
        self.html.append(block)

    def markdown(self) -> str:
        text = "\n".join(self.md).rstrip() + "\n"
        return re.sub(r"\n{3,}", "\n\n", text)

    def page(self) -> str:
        body = "\n".join(self.html)
        return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
                f"<title>{html.escape(printable(self.title))}</title>\n<style>\n{CSS}\n</style>\n"
                f"</head>\n<body>\n{body}\n</body>\n</html>\n")
