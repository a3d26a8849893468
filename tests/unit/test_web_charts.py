"""The SVG charts: well-formed XML, escaped labels, accessible summaries, empty data."""

from __future__ import annotations

import pytest
from defusedxml import ElementTree

from invoice_outbox.web.charts import (
    Bar,
    Series,
    horizontal_bars,
    nice_ceiling,
    series_from,
    shorten,
    stacked_bars,
)

SVG = "{http://www.w3.org/2000/svg}"
NASTY = "A&B <script>alert(\"x\")</script> 'q'"


def _parse(markup: str):
    return ElementTree.fromstring(str(markup))


def test_stacked_bars_are_valid_svg_with_a_title_per_segment() -> None:
    chart = stacked_bars(
        ["1 Feb", "2 Feb", "3 Feb"],
        [Series("MediSwitch", [1, 0, 4]), Series("PracticeLedger", [2, 3, 0])],
        title="Failures per day",
    )
    root = _parse(chart)
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    label = root.get("aria-label")
    assert label == (
        "Failures per day: 10 failures from 1 Feb to 3 Feb, most on 3 Feb (4). "
        "By series: MediSwitch 5, PracticeLedger 5."
    )
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert titles[0] == "Failures per day"
    segments = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert len(segments) == 4  # zero values draw nothing
    assert "MediSwitch, 3 Feb: 4 failures" in titles
    legend = [t for t in root.iter(f"{SVG}text") if "(5)" in "".join(t.itertext())]
    assert len(legend) == 2


def test_stacked_bar_heights_are_proportional() -> None:
    root = _parse(stacked_bars(["a", "b"], [Series("s", [5, 10])], title="t"))
    heights = [
        float(r.get("height")) for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None
    ]
    assert heights[1] == pytest.approx(2 * heights[0])


def test_labels_are_escaped_everywhere() -> None:
    charts = [
        stacked_bars([NASTY], [Series(NASTY, [3])], title=NASTY),
        horizontal_bars([Bar(NASTY, 3, href='/admin/causes/x"onclick="y')], title=NASTY),
    ]
    for chart in charts:
        root = _parse(chart)  # would not parse if anything leaked unescaped
        assert not list(root.iter(f"{SVG}script"))
        assert NASTY in root.get("aria-label", "")
        assert "<script>" not in str(chart)
        for element in root.iter():
            assert not any(name.startswith("on") for name in element.attrib)
    link = next(_parse(charts[1]).iter(f"{SVG}a"))
    assert link.get("href") == '/admin/causes/x"onclick="y'


@pytest.mark.parametrize(
    "chart",
    [
        stacked_bars([], [], title="Failures"),
        stacked_bars(["1 Feb"], [Series("MediSwitch", [0])], title="Failures"),
        horizontal_bars([], title="Causes"),
    ],
)
def test_empty_data_says_so(chart: str) -> None:
    root = _parse(chart)
    assert root.get("role") == "img"
    assert "Nothing to show" in root.get("aria-label", "")
    assert not list(root.iter(f"{SVG}rect"))


def test_series_must_match_the_categories() -> None:
    with pytest.raises(ValueError, match="one value per category"):
        stacked_bars(["a", "b"], [Series("s", [1])], title="t")


def test_horizontal_bars_link_and_scale() -> None:
    root = _parse(
        horizontal_bars(
            [Bar("HTTP 503", 40, "/admin/causes/http-503"), Bar("Timed out", 10, None)],
            title="Causes",
        )
    )
    links = list(root.iter(f"{SVG}a"))
    assert [a.get("href") for a in links] == ["/admin/causes/http-503"]
    widths = [float(r.get("width")) for r in root.iter(f"{SVG}rect")]
    assert widths[0] == pytest.approx(4 * widths[1])
    assert root.get("aria-label") == "Causes: HTTP 503 40; Timed out 10."


@pytest.mark.parametrize(
    ("value", "ceiling"),
    [(0, 1), (1, 1), (3, 5), (7, 10), (11, 20), (21, 25), (26, 50), (51, 100), (999, 1000)],
)
def test_nice_ceiling(value: int, ceiling: int) -> None:
    assert nice_ceiling(value) == ceiling


def test_long_labels_are_shortened_with_the_full_text_in_a_title() -> None:
    long = "A very long cause label that goes on and on and on"
    assert shorten(long).endswith("\u2026")
    assert len(shorten(long)) == 34
    root = _parse(horizontal_bars([Bar(long, 2)], title="t"))
    assert f"{long}: 2 failures" in [t.text for t in root.iter(f"{SVG}title")]


def test_series_from_fills_missing_days_with_zero() -> None:
    made = series_from(["a", "b"], {("x", "b"): 2}, ["x", "y"])
    assert made == [Series("x", [0, 2]), Series("y", [0, 0])]
