"""The small HTML pieces the analysis pages share (``report.html`` of ``inflor analyze``,
``compare.html`` of ``inflor compare``): a style sheet, number formatting, tables, a page."""
from __future__ import annotations

import html
import math
from typing import Sequence

CSS = """body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td:first-child{text-align:left;font-family:monospace}img{max-width:100%;border:1px solid #eee;margin:.3em 0}
pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:12px}h2{border-bottom:1px solid #ddd;padding-bottom:.2em}
.note{color:#666;font-size:13px}"""


def fmt(v, digits: int = 4) -> str:
    """A value for a table cell: ``–`` for None, floats with ``digits`` decimals (scientific
    notation when very large or small), anything else as escaped text."""
    if v is None:
        return "–"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3e}"
        return f"{v:.{digits}f}"
    return html.escape(str(v))


def table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    """An HTML table; header texts are escaped, cells are inserted as given (already HTML)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(title: str, parts: Sequence[str]) -> str:
    """A whole HTML document: ``title`` as the heading, then ``parts`` (HTML)."""
    head = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>")
    return "\n".join([head, f"<h1>{html.escape(title)}</h1>", *parts, "</body></html>"])
