"""The HTML reports rendered by a real browser with the network disabled: Debian's Chromium,
headless, behind a proxy that refuses every connection (127.0.0.1:9). The screenshots are
decoded (tests/png_pixels.py) and the charts' colours counted: the pages draw with nothing but
themselves, as in an air-gapped cluster.

Chromium is installed with apt-get when missing (tests/debian_packages.py), about 20 s.
KFKIT_UPDATE_SCREENSHOTS=1 also writes validate's screenshot to components/validate/report.png.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import PENGUINS, REPO, write_schema
from debian_packages import ensure_debian_package
from png_pixels import count_colour, read_png

from kfkit.html_report import OVER, PALETTE

pytestmark = pytest.mark.slow

BLUE, ORANGE, GREEN = PALETTE[:3]  # train / candidate, eval / trivial, baseline


@pytest.fixture(scope="module")
def chromium() -> str:
    if shutil.which("chromium") is None:
        ensure_debian_package("chromium")
    return shutil.which("chromium") or "/usr/bin/chromium"


def render(chromium: str, page: Path, height: int) -> np.ndarray:
    png = page.with_suffix(".png")
    subprocess.run(
        [
            chromium,
            "--headless=new",
            "--disable-gpu",
            "--no-sandbox",
            "--hide-scrollbars",
            "--no-first-run",
            "--proxy-server=127.0.0.1:9",  # nothing listens: any fetch would fail
            "--proxy-bypass-list=<-loopback>",  # loopback too
            f"--user-data-dir={page.parent / 'chromium-profile'}",
            f"--screenshot={png}",
            f"--window-size=1200,{height}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return read_png(png)


def drawn_share(pixels: np.ndarray) -> float:
    return float((pixels != 255).any(axis=2).mean())


def test_validate_report_renders_offline(chromium, tmp_path):
    from kfkit.components.ingest.executor import ingest
    from kfkit.components.validate.executor import report_html, validate

    first = ingest(str(PENGUINS), "species")
    _, before = validate(first.train, first.eval, "species")
    baseline = tmp_path / "train_statistics.pb"
    baseline.write_bytes(before["statistics"]["train"].SerializeToString())
    shifted = pd.read_csv(PENGUINS, na_values=["NA"])
    shifted["body_mass_g"] += 1000  # drift from the baseline's training data
    (tmp_path / "shifted.csv").write_text(shifted.to_csv(index=False))
    now = ingest(str(tmp_path / "shifted.csv"), "species")
    result, protos = validate(
        now.train,
        now.eval,
        "species",
        policy="warn",
        baseline_statistics=str(baseline),
        baseline_name="penguins version 1",
    )
    assert "drift:body_mass_g" in result.anomalies
    page = tmp_path / "validate.html"
    page.write_text(report_html(protos, result))

    pixels = render(chromium, page, 2000)
    assert pixels.shape == (2000, 1200, 3)
    assert drawn_share(pixels) > 0.1  # not blank
    # Histograms of train, eval and the baseline's data; the drifted feature's bar in red.
    assert count_colour(pixels, BLUE) > 5000
    assert count_colour(pixels, ORANGE) > 2000 and count_colour(pixels, GREEN) > 2000
    assert count_colour(pixels, OVER) > 1000
    if os.environ.get("KFKIT_UPDATE_SCREENSHOTS"):
        shutil.copyfile(page.with_suffix(".png"), REPO / "components" / "validate" / "report.png")


def test_evaluate_report_renders_offline(chromium, tmp_path):
    from kfkit.components.evaluate.executor import evaluate, report_html
    from kfkit.components.train.executor import train

    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"debt_ratio": rng.normal(size=3000), "income": rng.normal(size=3000)})
    score = 2 * frame["debt_ratio"] - frame["income"] + rng.normal(size=3000)
    frame["default"] = np.where(score > np.quantile(score, 0.8), "yes", "no")
    train_frame, eval_frame = frame.iloc[:2400], frame.iloc[2400:]
    schema = write_schema(train_frame, tmp_path / "schema")
    train(train_frame, str(schema / "schema.pbtxt"), "default", "loans", str(tmp_path / "model"))
    result = evaluate(str(tmp_path / "model"), eval_frame, {}, train_frame)
    assert result.roc and result.pr
    page = tmp_path / "evaluate.html"
    page.write_text(report_html(result, "rendering test"))

    pixels = render(chromium, page, 1800)
    assert drawn_share(pixels) > 0.05
    # Grouped metric bars (candidate blue, trivial orange), the heatmap's darkest cell, the curves.
    assert count_colour(pixels, BLUE) > 3000 and count_colour(pixels, ORANGE) > 1500
    curves = pixels[pixels.shape[0] // 2 :]  # the ROC and PR charts fill the lower half
    assert count_colour(curves, BLUE) > 1000
