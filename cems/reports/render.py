"""Render reports: HTML through Jinja2 templates, charts with matplotlib (PNG data URIs,
units on every axis), PDF through WeasyPrint (needs the system Pango library and, for
Korean text, a CJK font such as Debian's ``fonts-noto-cjk``).
"""

from __future__ import annotations

import base64
import io
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

from cems.errors import InputError
from cems.reports.i18n import texts

if TYPE_CHECKING:  # annotations only: rendering one report needs no other report's module
    from cems.reports.daily import DailyReport
    from cems.reports.resident import ResidentReport

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
FONT_FAMILIES = ["Noto Sans CJK KR", "Noto Sans CJK JP", "NanumGothic", "DejaVu Sans"]
"""Chart fonts, first match wins; every CJK face of Noto covers all of Hangul."""
CJK_FONT_FILES = ("NotoSansCJK", "NanumGothic")
"""File-name stems of CJK fonts registered by hand when matplotlib's font cache predates them."""


def environment() -> Environment:
    """The Jinja2 environment of the report templates (autoescaped)."""
    env = Environment(loader=FileSystemLoader(TEMPLATES),
                      autoescape=select_autoescape(["html"]), trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["won"] = lambda v: "–" if v is None else f"{int(v):,}"
    env.filters["kwh"] = lambda v: "–" if v is None else f"{float(v):,.1f}"
    env.filters["pct"] = lambda v: "–" if v is None else f"{float(v):.1f}"
    return env


def _figure_uri(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    plt.rcParams["font.family"] = chart_fonts(font_manager.fontManager)
    return plt


def chart_fonts(manager: Any) -> list[str]:
    """The font families for charts, a CJK family first when the system has one.

    matplotlib caches the system's font list once; a CJK font installed after that (e.g.
    ``apt-get install fonts-noto-cjk``) is missing from the cache and Korean labels would
    render as empty boxes, so such fonts are looked up on disk and registered.
    """
    from matplotlib import font_manager

    installed = {f.name for f in manager.ttflist}
    if not installed & set(FONT_FAMILIES[:-1]):
        for path in font_manager.findSystemFonts():
            if Path(path).name.startswith(CJK_FONT_FILES):
                manager.addfont(path)
        installed = {f.name for f in manager.ttflist}
    return [f for f in FONT_FAMILIES if f in installed] or ["sans-serif"]


def chart_texts(lang: str) -> dict[str, str]:
    """Chart labels in ``lang``; English when Korean is asked but no CJK font is installed
    (Hangul would render as empty boxes). The page text stays Korean either way."""
    if lang == "ko":
        plt = _pyplot()
        if plt.rcParams["font.family"][0] not in FONT_FAMILIES[:-1]:
            log.warning("no CJK font found (install fonts-noto-cjk): chart labels in English")
            return texts("en")
    return texts(lang)


def daily_chart(daily: pd.DataFrame, t: dict[str, str]) -> str:
    """Stacked daily bars: grid import and community supply, kWh per day."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    days = [pd.Timestamp(d).day for d in daily.index]
    ax.bar(days, daily["import_kwh"], label=t["import_kwh"], color="#8a8f98")
    ax.bar(days, daily["supplied_kwh"], bottom=daily["import_kwh"], label=t["supplied_kwh"],
           color="#f2a900")
    n_days = pd.Timestamp(daily.index[0]).days_in_month  # the whole month, partial or not
    ax.set_xlim(0.4, n_days + 0.6)
    ax.set_xticks([1, *range(5, n_days + 1, 5)])
    ax.set_xlabel("day of month / 일")
    ax.set_ylabel("energy [kWh]")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _figure_uri(fig)


def trend_chart(trend: list[dict[str, Any]], t: dict[str, str]) -> str:
    """Monthly bills with and without the assets, KRW."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    months = [row["month"][2:] for row in trend]
    actual = [row["actual_bill_krw"] or 0 for row in trend]
    cf = [row["counterfactual_bill_krw"] or 0 for row in trend]
    x = range(len(months))
    ax.bar([i - 0.2 for i in x], cf, width=0.4, label=t["without_assets"], color="#c9ccd1")
    ax.bar([i + 0.2 for i in x], actual, width=0.4, label=t["with_assets"], color="#2e7d32")
    ax.set_xticks(list(x), months, fontsize=8)
    ax.set_xlabel("month / 월")
    ax.set_ylabel("bill [KRW]")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _figure_uri(fig)


def plan_chart(series: pd.DataFrame) -> str:
    """Grid power, planned against actual, kW over the local day."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    hours = series.index.hour + series.index.minute / 60.0
    ax.plot(hours, series["actual_grid_kw"], label="actual", color="#1565c0")
    if "planned_grid_kw" in series:
        ax.plot(hours, series["planned_grid_kw"], label="plan", color="#ef6c00", linestyle="--")
    ax.set_xlabel("local time [h]")
    ax.set_ylabel("grid power [kW] (+ import)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _figure_uri(fig)


def resident_html(report: ResidentReport, lang: str = "ko", *, charts: bool = True,
                  nav: bool = False) -> str:
    """The resident report as a standalone HTML page (``nav``: web links and log-out)."""
    t = texts(lang)
    m = report.month
    period = pd.Period(m.month, freq="M")
    context = {
        "nav": nav, "prev_month": str(period - 1), "next_month": str(period + 1),
        "t": t, "lang": lang, "r": report.to_dict(), "bill_a": m.actual_bill,
        "bill_c": m.counterfactual_bill, "explanation": report.explanation(lang),
        "daily_chart": daily_chart(m.daily, chart_texts(lang))
        if charts and len(m.daily) else None,
        "trend_chart": trend_chart(list(report.trend), chart_texts(lang)) if charts else None,
    }
    return environment().get_template("resident.html").render(**context)


def daily_html(report: DailyReport, lang: str = "ko", *, charts: bool = True) -> str:
    """The operator daily report as a standalone HTML page."""
    context = {"t": texts(lang), "lang": lang, "r": report.to_dict(),
               "chart": plan_chart(report.series) if charts and len(report.series) else None}
    return environment().get_template("daily.html").render(**context)


def html_to_pdf(html: str) -> bytes:
    """Typeset ``html`` to PDF bytes with WeasyPrint."""
    try:
        import weasyprint
    except (ImportError, OSError) as exc:  # OSError: Pango missing
        raise InputError(f"PDF output needs WeasyPrint and the Pango library: {exc}; "
                         "use --format html, or apt-get install libpango-1.0-0") from exc
    return bytes(weasyprint.HTML(string=html).write_pdf())
