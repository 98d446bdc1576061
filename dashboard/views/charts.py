"""Small server-side SVG line charts: no script, no chart library, readable on a phone and in print.

Every label is escaped; the SVG is inlined in pages, so a name in a title could otherwise become markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 200
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 56, 12, 24, 28
MAX_POINTS = 400  # longer series are averaged into this many buckets


def downsample(
    points: Sequence[tuple[datetime, float]], limit: int = MAX_POINTS
) -> list[tuple[datetime, float]]:
    """At most `limit` points: consecutive points averaged in equal-count buckets, in time order."""
    if len(points) <= limit:
        return list(points)
    size = len(points) / limit
    out = []
    for i in range(limit):
        bucket = points[int(i * size) : max(int((i + 1) * size), int(i * size) + 1)]
        middle = bucket[len(bucket) // 2][0]
        out.append((middle, sum(v for _, v in bucket) / len(bucket)))
    return out


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:,.2f}"


def line_chart(
    points: Sequence[tuple[datetime, float]],
    title: str,
    unit: str = "",
    *,
    step: bool = False,
    reference: float | None = None,
    reference_label: str = "",
) -> Markup:
    """An inline SVG chart of `points` (time, value); `step` draws a staircase (stock levels)."""
    title_text = escape(title)
    if not points:
        return Markup(
            f'<figure class="rz-chart"><figcaption>{title_text}</figcaption><p>no data</p></figure>'
        )
    points = downsample(sorted(points))
    t0, t1 = points[0][0].timestamp(), points[-1][0].timestamp()
    values = [v for _, v in points] + ([reference] if reference is not None else [])
    low, high = min(0.0, min(values)), max(values)
    if high == low:
        high = low + 1.0
    span_t = (t1 - t0) or 1.0
    inner_w, inner_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM

    def x(t: datetime) -> float:
        return PAD_LEFT + (t.timestamp() - t0) / span_t * inner_w

    def y(v: float) -> float:
        return PAD_TOP + (1 - (v - low) / (high - low)) * inner_h

    coords: list[str] = []
    previous: float | None = None
    for t, v in points:
        if step and previous is not None:
            coords.append(f"{x(t):.1f},{y(previous):.1f}")
        coords.append(f"{x(t):.1f},{y(v):.1f}")
        previous = v
    label = escape(unit)
    parts = [
        f'<figure class="rz-chart"><figcaption>{title_text}</figcaption>',
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{title_text}" class="rz-svg">',
        f'<line x1="{PAD_LEFT}" y1="{PAD_TOP + inner_h}" x2="{WIDTH - PAD_RIGHT}" y2="{PAD_TOP + inner_h}" '
        'class="rz-axis"/>',
        f'<line x1="{PAD_LEFT}" y1="{PAD_TOP}" x2="{PAD_LEFT}" y2="{PAD_TOP + inner_h}" class="rz-axis"/>',
        f'<text x="{PAD_LEFT - 4}" y="{PAD_TOP + 4}" text-anchor="end">{_fmt(high)}</text>',
        f'<text x="{PAD_LEFT - 4}" y="{PAD_TOP + inner_h}" text-anchor="end">{_fmt(low)}</text>',
        f'<text x="{PAD_LEFT}" y="{PAD_TOP - 8}">{label}</text>',
        f'<text x="{PAD_LEFT}" y="{HEIGHT - 8}">{points[0][0]:%Y-%m-%d %H:%M}</text>',
        f'<text x="{WIDTH - PAD_RIGHT}" y="{HEIGHT - 8}" text-anchor="end">'
        f"{points[-1][0]:%Y-%m-%d %H:%M} UTC</text>",
    ]
    if reference is not None:
        ry = y(reference)
        parts.append(
            f'<line x1="{PAD_LEFT}" y1="{ry:.1f}" x2="{WIDTH - PAD_RIGHT}" y2="{ry:.1f}" class="rz-ref"/>'
            f'<text x="{WIDTH - PAD_RIGHT}" y="{ry - 3:.1f}" text-anchor="end">'
            f"{escape(reference_label)}</text>"
        )
    parts.append(f'<polyline points="{" ".join(coords)}" class="rz-line"/></svg></figure>')
    return Markup("".join(parts))
