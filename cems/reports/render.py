"""Render reports: HTML through Jinja2 templates, charts with matplotlib (PNG data URIs,
units on every axis), PDF through WeasyPrint (needs the system Pango library and, for
Korean text, a CJK font such as Debian's ``fonts-noto-cjk``).

Pages served by ``cems serve`` (``nav=True``) get interactive charts instead of PNGs: a
chart *spec* (the report's own values, JSON in a ``data-chart`` attribute) drawn by
``/static/charts.js`` with the vendored uPlot (cems/web/static/vendor/uplot/). Nothing
here computes a figure: values are the report's, formatted.
"""

from __future__ import annotations

import base64
import functools
import io
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

from cems.errors import InputError
from cems.reports.i18n import (
    day_label,
    label,
    local_time,
    month_label,
    plan_name,
    texts,
)

if TYPE_CHECKING:  # annotations only: rendering one report needs no other report's module
    from cems.reports.daily import DailyReport
    from cems.reports.resident import ResidentReport

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
FONT_FAMILIES = ["Noto Sans CJK KR", "Noto Sans CJK JP", "NanumGothic", "DejaVu Sans"]
"""Chart fonts, first match wins; every CJK face of Noto covers all of Hangul."""
CJK_FONT_FILES = ("NotoSansCJK", "NanumGothic")
"""File-name stems of CJK fonts registered by hand when matplotlib's font cache predates them."""


def number(value: Any) -> str:
    """A figure as the pages show it: thousands separated, not rounded; – for None."""
    return "–" if value is None else f"{value:,}"


def add_filters(env: Environment) -> Environment:
    """The formatting filters every page template uses (reports and web pages)."""
    env.filters["won"] = lambda v: "–" if v is None else f"{int(v):,}"
    env.filters["kwh"] = lambda v: "–" if v is None else f"{float(v):,.1f}"
    env.filters["pct"] = lambda v: "–" if v is None else f"{float(v):.1f}"
    env.filters["num"] = number
    env.filters["plan_name"] = plan_name
    env.filters["month_label"] = month_label
    env.filters["day_label"] = day_label
    env.filters["localtime"] = local_time
    env.filters["label"] = lambda code, group, lang: label(group, code, lang)
    return env


@functools.cache
def environment() -> Environment:
    """The Jinja2 environment of the report templates (autoescaped); one per process, so
    each template is compiled once (recompiling took ~185 ms of a 210 ms resident page)."""
    env = Environment(loader=FileSystemLoader(TEMPLATES),
                      autoescape=select_autoescape(["html"]), trim_blocks=True,
                      lstrip_blocks=True)
    return add_filters(env)


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
    x = range(len(months))
    # a month without data gets no bar (not a 0 KRW bar as if billed nothing)
    cf = [(i - 0.2, row["counterfactual_bill_krw"]) for i, row in zip(x, trend, strict=True)
          if row["counterfactual_bill_krw"] is not None]
    actual = [(i + 0.2, row["actual_bill_krw"]) for i, row in zip(x, trend, strict=True)
              if row["actual_bill_krw"] is not None]
    ax.bar([p for p, _ in cf], [v for _, v in cf], width=0.4, label=t["without_assets"],
           color="#c9ccd1")
    ax.bar([p for p, _ in actual], [v for _, v in actual], width=0.4,
           label=t["with_assets"], color="#2e7d32")
    ax.set_xticks(list(x), months, fontsize=8)
    ax.set_xlabel("month / 월")
    ax.set_ylabel("bill [KRW]")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _figure_uri(fig)


def plan_chart(series: pd.DataFrame, t: dict[str, str] | None = None) -> str:
    """Grid power, planned against actual, kW over the local day (intervals without
    measurements are gaps, not zeros)."""
    t = t or texts("en")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    hours = series.index.hour + series.index.minute / 60.0
    ax.step(hours, series["actual_grid_kw"], where="post", label=t["actual"], color="#1565c0")
    if "planned_grid_kw" in series:
        ax.step(hours, series["planned_grid_kw"], where="post", label=t["planned"],
                color="#ef6c00", linestyle="--")
    ax.set_xlim(0, 24)
    low, high = ax.get_ylim()
    ax.set_ylim(min(low, 0.0), max(high, 0.0))   # read against 0, as the web chart
    ax.set_xlabel(f"{t['hour']} [h]")
    ax.set_ylabel("kW (+ import / 수전)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _figure_uri(fig)


def _values(series: pd.Series) -> list[float | None]:
    """JSON numbers of a series, None (a gap) where it has no value."""
    return [None if pd.isna(v) else float(v) for v in series]


def grid_chart_spec(series: pd.DataFrame, t: dict[str, str]) -> dict[str, Any] | None:
    """The daily report's grid power (actual, plan) as an interactive chart spec: epoch
    seconds of the interval starts, kW, None where not measured; None when nothing to draw."""
    if series.empty:
        return None
    lines = [{"label": t["actual"], "values": _values(series["actual_grid_kw"]),
              "color": "#1565c0"}]
    if "planned_grid_kw" in series:
        lines.append({"label": t["planned"], "values": _values(series["planned_grid_kw"]),
                      "color": "#ef6c00", "dash": True})
    if all(v is None for line in lines for v in line["values"]):
        return None
    index = pd.DatetimeIndex(series.index)
    return {"type": "step", "time": True, "tz": str(index.tz or "UTC"),
            "x": [int(v) for v in index.as_unit("s").asi8], "x_label": t["hour"],
            "unit": "kW", "digits": 1, "y_label": "kW", "series": lines,
            "reset": t["reset_zoom"]}


def daily_chart_spec(daily: pd.DataFrame, month: str, t: dict[str, str], lang: str
                     ) -> dict[str, Any] | None:
    """A household month's daily KEPCO-meter import and community supply (kWh per day) as
    grouped bars over every day of the month (days without data are gaps)."""
    if daily.empty:
        return None
    period = pd.Period(month, freq="M")
    by_day = {pd.Timestamp(d).day: row for d, row in daily.iterrows()}
    days = list(range(1, period.days_in_month + 1))

    def column(name: str) -> list[float | None]:
        return [float(by_day[d][name]) if d in by_day else None for d in days]

    return {"type": "bars", "time": False, "x": days,
            "x_ticks": [str(d) for d in days],
            "x_labels": [day_label(f"{month}-{d:02d}", lang) for d in days],
            "x_label": t["day_of_month"], "unit": "kWh", "digits": 2,
            "y_label": t["energy_kwh"],
            "series": [{"label": t["import_kwh"], "values": column("import_kwh"),
                        "color": "#8a8f98"},
                       {"label": t["supplied_kwh"], "values": column("supplied_kwh"),
                        "color": "#f2a900"}],
            "reset": t["reset_zoom"]}


def trend_chart_spec(trend: list[dict[str, Any]], t: dict[str, str], lang: str
                     ) -> dict[str, Any] | None:
    """The 12-month bills with and without the assets (KRW) as grouped bars; a month
    without data is a gap."""
    if not any(row["actual_bill_krw"] is not None for row in trend):
        return None
    return {"type": "bars", "time": False, "x": list(range(len(trend))),
            "x_ticks": [f"{row['month'][2:4]}.{row['month'][5:7]}" for row in trend],
            "x_labels": [month_label(row["month"], lang) for row in trend],
            "x_label": t["month"], "unit": t["won"], "digits": 0, "y_label": t["bill_krw"],
            "series": [{"label": t["without_assets"],
                        "values": [row["counterfactual_bill_krw"] for row in trend],
                        "color": "#9aa0a8"},
                       {"label": t["with_assets"],
                        "values": [row["actual_bill_krw"] for row in trend],
                        "color": "#2e7d32"}],
            "reset": t["reset_zoom"]}


def _month_nav(month: str, current_month: str | None) -> dict[str, str | None]:
    """Previous and next month of ``month`` (None past the current month or the range)."""
    period = pd.Period(month, freq="M")
    prev_month = str(period - 1) if period.year > 2000 or period.month > 1 else None
    nxt = period + 1
    limit = pd.Period(current_month, freq="M") if current_month else pd.Period("2099-12", "M")
    return {"prev_month": prev_month, "next_month": str(nxt) if nxt <= limit else None}


def resident_html(report: ResidentReport, lang: str = "ko", *, charts: bool = True,
                  nav: bool = False, operator: bool = False,
                  current_month: str | None = None) -> str:
    """The resident report as a standalone HTML page.

    ``nav``: the web page (month navigation, language switch, log-out, interactive charts);
    otherwise PNG charts for a file or PDF. ``operator``: show the developer and tariff-source
    notes (never to residents). ``current_month``: no link past it.
    """
    t = texts(lang)
    m = report.month
    context = {
        "nav": nav, **_month_nav(m.month, current_month), "operator": operator,
        "current_month": current_month,
        "t": t, "lang": lang, "r": report.to_dict(), "bill_a": m.actual_bill,
        "bill_c": m.counterfactual_bill, "explanation": report.explanation(lang),
        "daily_chart": daily_chart(m.daily, chart_texts(lang))
        if charts and not nav and len(m.daily) else None,
        "trend_chart": trend_chart(list(report.trend), chart_texts(lang))
        if charts and not nav else None,
        "daily_spec": daily_chart_spec(m.daily, m.month, t, lang) if charts and nav else None,
        "trend_spec": trend_chart_spec(list(report.trend), t, lang) if charts and nav else None,
    }
    return environment().get_template("resident.html").render(**context)


def resident_empty_html(*, household_id: str, household_name: str, site_name: str,
                        month: str, lang: str = "ko", current_month: str | None = None,
                        operator: bool = False, detail: str | None = None) -> str:
    """The resident web page of a month without meter data: says so, with month navigation,
    the language switch and log-out (``operator``: also ``detail``, the reason)."""
    t = texts(lang)
    context = {"nav": True, **_month_nav(month, current_month), "t": t, "lang": lang,
               "month": month, "current_month": current_month,
               "past": current_month is not None and month < current_month,
               "household_id": household_id, "household_name": household_name,
               "site_name": site_name, "operator": operator, "detail": detail if operator else None}
    return environment().get_template("resident_empty.html").render(**context)


def daily_html(report: DailyReport, lang: str = "ko", *, charts: bool = True,
               nav: bool = False) -> str:
    """The operator daily report as a standalone HTML page (``nav``: the web page, with
    the date picker, log-out and an interactive chart)."""
    t = texts(lang)
    drawn = charts and not nav and bool(report.series.notna().any().any())
    context = {"t": t, "lang": lang, "r": report.to_dict(), "nav": nav,
               "chart": plan_chart(report.series, chart_texts(lang)) if drawn else None,
               "chart_spec": grid_chart_spec(report.series, t) if charts and nav else None,
               **day_nav(report.day)}
    return environment().get_template("daily.html").render(**context)


def day_nav(day: Any) -> dict[str, str | None]:
    """The days before and after ``day`` (ISO), None outside 2000..2099."""
    d = pd.Timestamp(day)
    prev_day, next_day = d - pd.Timedelta(days=1), d + pd.Timedelta(days=1)
    return {"prev_day": prev_day.date().isoformat() if prev_day.year >= 2000 else None,
            "next_day": next_day.date().isoformat() if next_day.year <= 2099 else None}


def html_to_pdf(html: str) -> bytes:
    """Typeset ``html`` to PDF bytes with WeasyPrint."""
    try:
        import weasyprint
    except (ImportError, OSError) as exc:  # OSError: Pango missing
        raise InputError(f"PDF output needs WeasyPrint and the Pango library: {exc}; "
                         "use --format html, or apt-get install libpango-1.0-0") from exc
    return bytes(weasyprint.HTML(string=html).write_pdf())
