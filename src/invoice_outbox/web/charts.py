"""Server-side SVG charts: pure functions from numbers and labels to safe markup.

Every text that reaches the markup is escaped here (labels come from configuration and data),
so the result is returned as `Markup` and placed in templates as is: ``{{ chart }}``.
Each chart is an ``<svg role="img" aria-label="...">`` whose label summarises the numbers in
words (screen readers read it instead of the drawing), with a ``<title>`` on every bar (hover
tooltips).  Colours are the Okabe-Ito palette (distinguishable with colour blindness); no
inline ``style`` (the pages' Content-Security-Policy forbids it), presentation attributes only.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Final

from markupsafe import Markup

PALETTE: Final = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
)
#: Series beyond the palette are drawn in this grey (legend says which).
OTHER_COLOUR: Final = "#999999"
_FONT: Final = 'font-family="system-ui, sans-serif" font-size="12"'
_LABEL_CHARS: Final = 34


def _a(value: object) -> str:
    """An attribute value, escaped (quotes too)."""
    return escape(str(value), quote=True)


def _t(value: object) -> str:
    """Element text, escaped."""
    return escape(str(value), quote=False)


def counted(value: int, unit: str) -> str:
    """``1 invoice``, ``3 invoices``: `unit` is the singular noun."""
    return f"{value} {unit if value == 1 else unit + 's'}"


def shorten(label: str, limit: int = _LABEL_CHARS) -> str:
    """`label` cut to `limit` characters with an ellipsis (the full text goes in a title)."""
    return label if len(label) <= limit else label[: limit - 1].rstrip() + "\u2026"


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2, 2.5 or 5 times a power of ten that is at least `value` (>= 1)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0):
        if step * power >= value:
            return int(step * power)
    return int(10 * power)


def _ticks(top: int) -> list[int]:
    """Four or five evenly spaced whole-number gridline values from 0 to `top`."""
    for parts in (4, 5, 2):
        if top % parts == 0:
            return [top * i // parts for i in range(parts + 1)]
    return [0, top]


def _markup(parts: Sequence[str]) -> Markup:
    """The chart as markup.  Safe: every text and attribute value in `parts` went through
    `_a`/`_t` (escaped); the rest is our own constant markup and numbers."""
    return Markup("".join(parts))  # noqa: S704 - escaped above, piece by piece


def _empty(width: int, height: int, label: str, message: str) -> Markup:
    return _markup(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="{_a(label + ": " + message)}">'
            f"<title>{_t(label)}</title>"
            f'<text x="{width // 2}" y="{height // 2}" text-anchor="middle" {_FONT} '
            f'fill="#444444">{_t(message)}</text></svg>'
        ]
    )


@dataclass(frozen=True, slots=True)
class Series:
    """One stacked series: a name and one value per category."""

    name: str
    values: Sequence[int]


def stacked_bars(
    categories: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    unit: str = "failure",
    empty_message: str = "Nothing to show for this period.",
    width: int = 720,
    height: int = 280,
    colours: Mapping[str, str] | None = None,
    link: Callable[[str | None, int], str | None] | None = None,
) -> Markup:
    """Vertical bars, one per category (e.g. a day), stacked by series (e.g. a system).

    `categories` label the x axis (shown thinned out when there are many); every series has
    one value per category.  A legend lists the series with their totals; each bar carries its
    total above it.  `colours`: a colour per series name (`stable_colours`), so a system keeps
    its colour on every page; `link(series or None, index)`: where a bar segment (or the
    category's label and total, with None) leads.
    """
    if any(len(s.values) != len(categories) for s in series):
        raise ValueError("every series needs one value per category")
    totals = [sum(s.values[i] for s in series) for i in range(len(categories))]
    grand = sum(totals)
    if not categories or grand == 0:
        return _empty(width, height, title, empty_message)
    legend_rows = math.ceil(len(series) / 4)
    left, right, top_pad = 48, 12, 12
    bottom = 48 + 20 * legend_rows
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    top = nice_ceiling(max(totals))
    slot = plot_w / len(categories)
    bar_w = max(2.0, slot * 0.7)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{_a(_stacked_summary(title, categories, series, totals, unit))}">',
        f"<title>{_t(title)}</title>",
    ]
    for tick in _ticks(top):
        y = top_pad + plot_h - plot_h * tick / top
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#d0d0d0" stroke-width="1"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" {_FONT} '
            f'fill="#333333">{tick}</text>'
        )
    every = max(1, math.ceil(len(categories) / 10))
    for i, category in enumerate(categories):
        x = left + slot * i + (slot - bar_w) / 2
        y = top_pad + plot_h
        for index, one in enumerate(series):
            value = one.values[i]
            if value <= 0:
                continue
            h = plot_h * value / top
            y -= h
            segment = (
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{_fill(one.name, index, colours)}"><title>'
                f"{_t(f'{one.name}, {category}: {counted(value, unit)}')}</title></rect>"
            )
            target = link(one.name, i) if link else None
            parts.append(f'<a href="{_a(target)}">{segment}</a>' if target else segment)
        centre = left + slot * i + slot / 2
        day_link = link(None, i) if link else None
        if totals[i]:
            total = (
                f'<text x="{centre:.1f}" y="{y - 4:.1f}" text-anchor="middle" {_FONT} '
                f'fill="#222222">{totals[i]}</text>'
            )
            parts.append(f'<a href="{_a(day_link)}">{total}</a>' if day_link else total)
        if i % every == 0:
            day_tick = (
                f'<text x="{centre:.1f}" y="{top_pad + plot_h + 16}" '
                f'text-anchor="middle" {_FONT} fill="#333333">{_t(shorten(category, 12))}</text>'
            )
            parts.append(f'<a href="{_a(day_link)}">{day_tick}</a>' if day_link else day_tick)
    parts.append(
        f'<line x1="{left}" x2="{width - right}" y1="{top_pad + plot_h}" '
        f'y2="{top_pad + plot_h}" stroke="#333333" stroke-width="1"/>'
    )
    column_w = (width - left) / 4
    for index, one in enumerate(series):
        lx = left + column_w * (index % 4)
        ly = height - 20 * legend_rows + 20 * (index // 4) - 6
        parts.append(
            f'<rect x="{lx:.1f}" y="{ly - 10}" width="12" height="12" '
            f'fill="{_fill(one.name, index, colours)}"/>'
            f'<text x="{lx + 17:.1f}" y="{ly}" {_FONT} fill="#222222">'
            f"<title>{_t(one.name)}</title>"
            f"{_t(shorten(one.name, 18))} ({sum(one.values)})</text>"
        )
    parts.append("</svg>")
    return _markup(parts)


def _colour(index: int) -> str:
    return PALETTE[index] if index < len(PALETTE) else OTHER_COLOUR


def _fill(name: str, index: int, colours: Mapping[str, str] | None) -> str:
    if colours is not None and name in colours:
        return colours[name]
    return _colour(index)


def stable_colours(names: Sequence[str]) -> dict[str, str]:
    """A colour for each name that does not depend on which names a chart happens to show:
    each name prefers the palette entry its hash picks (stable across reloads, pages and
    processes), taking the next free one when another name (earlier by name) has it; beyond
    the palette, grey."""
    taken: dict[str, str] = {}
    free = list(PALETTE)
    for name in sorted(set(names)):
        if not free:
            taken[name] = OTHER_COLOUR
            continue
        start = int(hashlib.sha256(name.encode()).hexdigest(), 16) % len(PALETTE)
        for step in range(len(PALETTE)):
            colour = PALETTE[(start + step) % len(PALETTE)]
            if colour in free:
                free.remove(colour)
                taken[name] = colour
                break
    return taken


def _stacked_summary(
    title: str,
    categories: Sequence[str],
    series: Sequence[Series],
    totals: Sequence[int],
    unit: str,
) -> str:
    peak = max(range(len(totals)), key=lambda i: totals[i])
    by_series = sorted((-sum(s.values), s.name) for s in series)
    named = ", ".join(f"{name} {-negative}" for negative, name in by_series if negative)
    return (
        f"{title}: {counted(sum(totals), unit)} from {categories[0]} to {categories[-1]}, "
        f"most on {categories[peak]} ({totals[peak]}). By series: {named}."
    )


@dataclass(frozen=True, slots=True)
class Bar:
    """One horizontal bar: a label, a value, and optionally where clicking it leads."""

    label: str
    value: int
    href: str | None = None


def horizontal_bars(
    bars: Sequence[Bar],
    *,
    title: str,
    unit: str = "failure",
    empty_message: str = "Nothing to show.",
    width: int = 720,
    bar_height: int = 26,
) -> Markup:
    """Horizontal bars, largest first as given, label on the left and count at the bar's end."""
    if not bars or all(b.value <= 0 for b in bars):
        return _empty(width, 80, title, empty_message)
    label_w, right, gap = 250, 60, 8
    height = len(bars) * (bar_height + gap) + gap
    top = max(b.value for b in bars)
    plot_w = width - label_w - right
    summary = f"{title}: " + "; ".join(f"{b.label} {b.value}" for b in bars) + "."
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{_a(summary)}">',
        f"<title>{_t(title)}</title>",
    ]
    for i, bar in enumerate(bars):
        y = gap + i * (bar_height + gap)
        w = max(1.0, plot_w * max(bar.value, 0) / top)
        row = (
            f'<text x="{label_w - 8}" y="{y + bar_height * 0.68:.1f}" text-anchor="end" {_FONT} '
            f'fill="#222222">{_t(shorten(bar.label))}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_height}" '
            f'fill="{PALETTE[0]}"><title>'
            f"{_t(f'{bar.label}: {counted(bar.value, unit)}')}</title></rect>"
            f'<text x="{label_w + w + 6:.1f}" y="{y + bar_height * 0.68:.1f}" {_FONT} '
            f'fill="#222222">{bar.value}</text>'
        )
        if bar.href is not None:
            row = f'<a href="{_a(bar.href)}">{row}</a>'
        parts.append(row)
    parts.append("</svg>")
    return _markup(parts)


def series_from(
    categories: Sequence[str], counts: Mapping[tuple[str, str], int], names: Sequence[str]
) -> list[Series]:
    """Series per name from ``{(name, category): count}`` (missing pairs count 0)."""
    return [Series(name, [counts.get((name, c), 0) for c in categories]) for name in names]
