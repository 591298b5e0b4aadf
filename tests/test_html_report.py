"""kfkit.html_report: one self-contained page (no scripts, nothing from the network), all text
escaped, charts drawn from the numbers given."""

from __future__ import annotations

import re

from kfkit.html_report import OVER, PALETTE, Page

EVIL = "<script>alert(1)</script>"


def hostile_page() -> str:
    page = Page(f"report {EVIL}")
    page.heading(EVIL)
    page.paragraph(f'feature "{EVIL}" & more')
    page.items([EVIL])
    page.open_section("feature anomaly", f"feature-{EVIL}")
    page.legend([EVIL, "eval"])
    page.bars([(EVIL, {"train": 0.5, "eval": None})], ["train", "eval"], marks={EVIL: 0.2}, over=[EVIL])
    page.histograms([(EVIL, [(0.0, 1.0, 3), (1.0, 2.0, 5)])])
    page.lines([(EVIL, [0, 0.5, 1], [0, 0.8, 1])], EVIL, EVIL, diagonal=True)
    page.table([EVIL], [[EVIL], [1.5]], [True])
    page.heatmap([EVIL, "b"], [[1, 2], [3, 4]], EVIL)
    page.close_section()
    return page.render()


def test_user_text_is_escaped_everywhere_and_nothing_is_fetched_or_run():
    html = hostile_page()
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("&lt;script&gt;") >= 12  # title, heading, chart labels, tooltips, tables...
    for fetch in ("http://", "https://", "@import", "url(", "src=", "href=", "<link", "<img", "<iframe"):
        assert fetch not in html.lower(), fetch
    assert re.search(r"<style>[^<]*</style>", html)  # the only CSS is inline


def test_charts_are_drawn_from_the_numbers():
    page = Page("t")
    page.bars(
        [("a", {"x": 1.0, "y": 0.5}), ("b", {"x": 0.25, "y": None})],
        ["x", "y"],
        marks={"a": 0.5, "b": None},
        over=["a"],
    )
    html = page.render()
    assert html.count('class="bar s0 over"') == 1 and html.count('class="bar s1 over"') == 1
    assert html.count('class="bar s0"') == 1  # b's x; b's y is None: no bar
    assert html.count('class="mark"') == 1 and OVER in html and PALETTE[0] in html
    widths = [float(w) for w in re.findall(r'class="bar s0[^"]*" x="[^"]*" y="[^"]*" width="([^"]*)"', html)]
    assert widths[0] == 4 * widths[1]  # 1.0 against 0.25 on the shared scale

    page = Page("t")
    page.histograms([("train", [(0, 1, 1), (1, 2, 3), (2, 3, 0)]), ("eval", [(0, 3, 2)]), ("none", [])])
    html = page.render()
    assert html.count('class="bar s0"') == 3 and html.count('class="bar s1"') == 1
    assert "none" not in html  # an empty panel is left out

    page = Page("t")
    page.lines([("roc", [0.0, 0.1, 1.0], [0.0, 0.9, 1.0])], "fpr", "tpr")
    points = re.search(r'points="([^"]*)"', page.render()).group(1).split()
    assert len(points) == 3


def test_a_heatmap_shades_by_value():
    page = Page("t")
    page.heatmap(["a", "b"], [[10, 0], [5, 10]])
    cells = re.findall(r'<td class="cell" style="background:rgb\((\d+),', page.render())
    assert [int(c) for c in cells] == [55, 255, 155, 55]
