"""Korean chart labels render with a CJK font, not as empty boxes."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import pytest

from cems.reports import render

CJK_FILES = [p for d in (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
             if d.exists() for p in d.rglob("*") if p.name.startswith(render.CJK_FONT_FILES)]


def test_korean_labels_have_glyphs() -> None:
    if not CJK_FILES:
        message = "no CJK font installed (apt-get install fonts-noto-cjk)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    plt = render._pyplot()
    assert plt.rcParams["font.family"][0] != "DejaVu Sans"
    fig, ax = plt.subplots()
    ax.set_title("일별 전력 사용량 (kWh)")
    ax.set_xlabel("날짜")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph ... missing from font(s)" becomes a failure
        fig.savefig(io.BytesIO(), format="png")
    plt.close(fig)


def test_without_a_cjk_font_korean_charts_fall_back_to_english_labels(monkeypatch) -> None:
    monkeypatch.setattr(render, "chart_fonts", lambda manager: ["DejaVu Sans"])
    monkeypatch.setattr(render, "CJK_FONT_FILES", ("no-such-font",))
    assert render.chart_texts("ko") == render.texts("en")
    assert render.chart_texts("en") == render.texts("en")
