"""Charts as inline SVG text, so the report card is one HTML file that needs no script.

Two shapes cover the card: lines over a step axis (loss curves, throughput) and
horizontal bars (funnel, tokens by source). Output depends only on the numbers
given (fixed rounding, no ids from counters or clocks), so the same metrics give
the same bytes.
"""
from __future__ import annotations

import math
from html import escape

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 560, 240, 64, 120, 28, 34
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")


def num(v: float) -> str:
    """Four significant digits, plain notation where it is short."""
    if v == 0 or not math.isfinite(v):
        return "0" if v == 0 else str(v)
    return f"{v:.4g}"


def _frame(title: str, body: list[str], height: int = H) -> str:
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {W} {height}" '
            f'width="{W}" height="{height}"><title>{escape(title)}</title>'
            f'<text x="{PAD_L}" y="16" font-size="13" font-weight="bold">{escape(title)}</text>')
    return head + "".join(body) + "</svg>"


def line_chart(title: str, series: dict[str, list[tuple[float, float]]], log_y: bool = False) -> str:
    """One polyline per named series of (x, y) points; finite points only."""
    clean = {k: [(x, y) for x, y in pts if math.isfinite(y) and (y > 0 or not log_y)] for k, pts in series.items()}
    clean = {k: v for k, v in clean.items() if v}
    if not clean:
        return _frame(title, [f'<text x="{PAD_L}" y="60" font-size="12">no data</text>'])
    f = math.log10 if log_y else (lambda v: v)
    xs = [x for pts in clean.values() for x, _ in pts]
    ys = [f(y) for pts in clean.values() for _, y in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    pw, ph = W - PAD_L - PAD_R, H - PAD_T - PAD_B

    def px(x):
        return PAD_L + (x - x0) / (x1 - x0) * pw

    def py(y):
        return PAD_T + (1 - (f(y) - y0) / (y1 - y0)) * ph

    body = [f'<rect x="{PAD_L}" y="{PAD_T}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    for v, anchor_y in ((y1, PAD_T + 4), (y0, PAD_T + ph)):
        label = num(10 ** v if log_y else v)
        body.append(f'<text x="{PAD_L - 4}" y="{anchor_y}" font-size="10" text-anchor="end">{label}</text>')
    for v, anchor in ((x0, "start"), (x1, "end")):
        body.append(f'<text x="{px(v):.1f}" y="{H - PAD_B + 14}" font-size="10" text-anchor="{anchor}">{num(v)}</text>')
    for i, (name, pts) in enumerate(sorted(clean.items())):
        c = COLOURS[i % len(COLOURS)]
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        mark = "polyline" if len(pts) > 1 else "circle"
        if mark == "polyline":
            body.append(f'<polyline class="series" fill="none" stroke="{c}" stroke-width="1.5" points="{path}"/>')
        else:
            body.append(f'<circle class="series" r="3" fill="{c}" cx="{px(pts[0][0]):.1f}" cy="{py(pts[0][1]):.1f}"/>')
        body.append(f'<text x="{W - PAD_R + 8}" y="{PAD_T + 12 + 14 * i}" font-size="11" fill="{c}">'
                    f'{escape(name)}</text>')
    return _frame(title, body)


def bar_chart(title: str, items: list[tuple[str, float]]) -> str:
    """Horizontal bars, one per (label, value), in the order given."""
    if not items:
        return _frame(title, [f'<text x="{PAD_L}" y="60" font-size="12">no data</text>'])
    row, left = 18, 150
    height = PAD_T + row * len(items) + 10
    top = max(v for _, v in items) or 1
    body = []
    for i, (label, v) in enumerate(items):
        y = PAD_T + i * row
        w = max(0.0, v) / top * (W - left - 70)
        body.append(f'<text x="{left - 6}" y="{y + 12}" font-size="11" text-anchor="end">{escape(str(label))}</text>'
                    f'<rect class="bar" x="{left}" y="{y + 2}" width="{w:.1f}" height="{row - 5}" fill="{COLOURS[0]}"/>'
                    f'<text x="{left + w + 4:.1f}" y="{y + 12}" font-size="10">{num(v)}</text>')
    return _frame(title, body, height)
