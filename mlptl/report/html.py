"""One report, two renderings: Markdown (report.md, images beside it) and a single self-contained HTML page.

The report is built once as a list of blocks and rendered twice, so report.html says exactly what
report.md says; its plots are embedded as base64 PNG, so the page can be mailed or opened from an
MLflow artifact view without the files next to it.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import numpy as np
import pandas as pd

from mlptl.report.tables import markdown

__all__ = ["Block", "to_markdown", "to_html"]

#: ("h1" | "h2" | "p", text), ("table", DataFrame) or ("img", file name in the report directory).
Block = tuple[str, object]

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 70em; margin: 2em auto; padding: 0 1em; color: #222; }
p.answer { font-size: 1.08em; background: #f4f7fb; border-left: 4px solid #4a78b5; padding: 0.8em 1em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #eee; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; display: block; margin: 1em 0; }
code { background: #f2f2f2; padding: 0 0.2em; }
"""


def to_markdown(blocks: list[Block]) -> str:
    parts = []
    for kind, payload in blocks:
        if kind == "h1":
            parts.append(f"# {payload}\n")
        elif kind == "h2":
            parts.append(f"## {payload}\n")
        elif kind in ("p", "answer"):
            parts.append(f"{payload}\n")
        elif kind == "table":
            parts.append(markdown(payload))
        elif kind == "img":
            parts.append(f"![{payload}]({payload})\n")
    return "\n".join(parts)


def _inline(text: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(str(text)))


def _table(df: pd.DataFrame) -> str:
    if df.empty:
        return "<p>(no rows)</p>"

    def cell(v):
        if isinstance(v, float | np.floating):
            return "" if np.isnan(v) else format(v, ".4g")
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(blocks: list[Block], title: str, image_dir: Path) -> str:
    parts = []
    for kind, payload in blocks:
        if kind in ("h1", "h2"):
            parts.append(f"<{kind}>{_inline(payload)}</{kind}>")
        elif kind == "answer":
            parts.append(f'<p class="answer">{_inline(payload)}</p>')
        elif kind == "p":
            parts.append(f"<p>{_inline(payload)}</p>")
        elif kind == "table":
            parts.append(_table(payload))
        elif kind == "img":
            data = base64.b64encode((Path(image_dir) / str(payload)).read_bytes()).decode("ascii")
            parts.append(f'<img alt="{html.escape(str(payload))}" src="data:image/png;base64,{data}">')
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )
