"""One document, two renderings: GitHub Markdown and a self-contained HTML page.

Text passed in may use two bits of Markdown, ``code`` and **bold**; both renderings get them.
Output depends only on what is added, so unchanged input gives byte-identical files.
"""

from __future__ import annotations

import html
import numbers
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:1200px;padding:0 1rem;color:#222;line-height:1.45}
h1,h2,h3{line-height:1.2}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.5rem}
table{border-collapse:collapse;margin:.6rem 0 1.2rem;font-size:.85rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.diff td{background:#fff5d6}code{font-size:.85em;background:#f4f4f4;padding:0 .2em}
figure{margin:1rem 0 2rem}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85rem;color:#555}.note{color:#666;font-style:italic}
.good{color:#1a7f37;font-weight:600}.bad{color:#b42318;font-weight:600}
details{margin:.5rem 0 1rem}summary{cursor:pointer}
.cols{display:flex;gap:1.5rem;align-items:flex-start}.col{flex:1 1 0;min-width:0}
@media (max-width:900px){.cols{display:block}}
""".strip()

_INLINE = [(re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
           (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>")]


def inline_html(text: Any) -> str:
    out = html.escape(str(text), quote=False)
    for pattern, repl in _INLINE:
        out = pattern.sub(repl, out)
    return out


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _is_num(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, (bool, np.bool_))


def anchor(text: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


class Doc:
    """Collects blocks and renders them as Markdown and as HTML."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.md: list[str] = [f"# {title}", ""]
        self.html: list[str] = [f"<h1>{inline_html(title)}</h1>"]

    def heading(self, level: int, text: str) -> None:
        self.md += [f"{'#' * level} {text}", ""]
        self.html.append(f'<h{level} id="{anchor(text)}">{inline_html(text)}</h{level}>')

    def para(self, text: str, css: str = "") -> None:
        self.md += [text, ""]
        cls = f' class="{css}"' if css else ""
        self.html.append(f"<p{cls}>{inline_html(text)}</p>")

    def note(self, text: str) -> None:
        self.md += [f"*{text}*", ""]
        self.html.append(f'<p class="note">{inline_html(text)}</p>')

    def bullets(self, items: Iterable[str]) -> None:
        items = list(items)
        if not items:
            return
        self.md += [f"- {i}" for i in items] + [""]
        self.html.append("<ul>" + "".join(f"<li>{inline_html(i)}</li>" for i in items)
                         + "</ul>")

    def table(self, frame: pd.DataFrame, highlight: Sequence[bool] | None = None,
              collapse_after: int = 0, summary: str = "") -> None:
        """A table; rows flagged in ``highlight`` are marked; long ones fold in HTML."""
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
            body.append(f"<tr{mark}>" + "".join(
                f'<td class="num">{inline_html(v)}</td>' if _is_num(v) else
                f"<td>{inline_html(v)}</td>" for v in row) + "</tr>")
        block = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        if collapse_after and len(rows) > collapse_after:
            block = (f"<details><summary>{inline_html(summary or f'{len(rows)} rows')}"
                     f"</summary>{block}</details>")
        self.html.append(block)

    def figure(self, png: str, svg: str, alt: str, caption: str = "") -> None:
        """An image referenced relatively (PNG shown, SVG linked)."""
        self.md += [f"![{alt}]({png})", ""]
        if caption:
            self.md += [f"*{caption}* ([SVG]({svg}))", ""]
        self.html.append(
            f'<figure><a href="{html.escape(svg)}"><img src="{html.escape(png)}" '
            f'alt="{html.escape(alt)}" data-chart="{html.escape(png)}" loading="eager"></a>'
            + (f"<figcaption>{inline_html(caption)} (click for SVG)</figcaption>"
               if caption else "") + "</figure>")

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
                f"<title>{html.escape(self.title)}</title>\n<style>\n{CSS}\n</style>\n"
                f"</head>\n<body>\n{body}\n</body>\n</html>\n")
