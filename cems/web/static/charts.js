// Interactive charts of the CEMS pages, drawn with the vendored uPlot
// (/static/vendor/uplot/, MIT). Each <figure class="chart" data-chart='SPEC'> holds its
// spec as JSON, written by cems.reports.render from the report's own values: this script
// formats and draws them and computes no figure.
//
// SPEC: {"type": "step"|"bars", "time": bool, "tz": "Asia/Seoul", "x": [...],
//        "x_ticks": [...], "x_labels": [...], "x_label": str, "unit": str, "digits": int,
//        "y_label": str, "reset": str,
//        "series": [{"label", "values": [number|null], "color", "dash"}]}
// null is a gap (no data), never drawn as 0.
//
// Zoom: drag across the plot (mouse), the + / - buttons (touch), double-click or the reset
// button for the whole range. Values: hover, or touch the plot; the legend under the plot
// shows the values at the cursor with their unit.
"use strict";

(function () {
  if (typeof uPlot === "undefined") {
    return;
  }
  const lang = document.documentElement.lang === "en" ? "en-US" : "ko-KR";
  const formats = {};

  function number(value, digits) {
    if (value === null || value === undefined || Number.isNaN(value)) {
      return "\u2013";
    }
    const key = String(digits);
    if (!formats[key]) {
      formats[key] = new Intl.NumberFormat(lang, {
        minimumFractionDigits: digits, maximumFractionDigits: digits,
      });
    }
    return formats[key].format(value);
  }

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function button(text, title, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.title = title;
    b.setAttribute("aria-label", title);
    b.addEventListener("click", onClick);
    return b;
  }

  function build(figure) {
    let spec;
    try {
      spec = JSON.parse(figure.dataset.chart);
    } catch (e) {
      return;
    }
    const plot = figure.querySelector(".chart-plot") || figure;
    const bars = spec.type === "bars";
    const n = spec.series.length;
    const digits = typeof spec.digits === "number" ? spec.digits : 1;
    const unit = spec.unit ? " " + spec.unit : "";

    function localDate(ts) {
      return uPlot.tzDate(new Date(ts * 1e3), spec.tz || "UTC");
    }

    function clock(ts) {
      const d = localDate(ts);
      return pad(d.getHours()) + ":" + pad(d.getMinutes());
    }

    function xText(x) {
      if (x === null || x === undefined) {
        return "\u2013";
      }
      if (spec.time) {
        return clock(x);
      }
      const i = spec.x.indexOf(x);
      return i >= 0 && spec.x_labels ? spec.x_labels[i] : String(x);
    }

    function xTick(x) {
      if (spec.time) {
        return clock(x);
      }
      const i = spec.x.indexOf(x);
      return i >= 0 && spec.x_ticks ? spec.x_ticks[i] : "";
    }

    const series = [{ label: spec.x_label || "", value: function (u, x) { return xText(x); } }];
    spec.series.forEach(function (s, i) {
      const one = {
        label: s.label,
        stroke: s.color,
        width: bars ? 1 : 2,
        spanGaps: false,
        value: function (u, v) { return v === null || v === undefined ? "\u2013" : number(v, digits) + unit; },
      };
      if (s.dash) {
        one.dash = [6, 4];
      }
      if (bars) {
        one.fill = s.color;
        one.paths = uPlot.paths.bars({
          size: [n > 1 ? 0.8 / n : 0.6, 48],
          align: n === 1 ? 0 : (i === 0 ? -1 : 1),
        });
        one.points = { show: false };
      } else {
        one.paths = uPlot.paths.stepped({ align: 1 });
      }
      series.push(one);
    });

    const data = [spec.x].concat(spec.series.map(function (s) { return s.values; }));
    const first = spec.x[0];
    const last = spec.x[spec.x.length - 1];
    const whole = bars ? [first - 0.6, last + 0.6] : [first, last];

    function height() {
      return window.innerWidth < 600 ? 220 : 280;
    }

    const opts = {
      width: Math.max(plot.clientWidth, 200),
      height: height(),
      scales: {
        // powers, energies and bills are read against 0: the y axis always includes it
        y: {
          range: function (u, min, max) {
            return uPlot.rangeNum(Math.min(0, min), Math.max(0, max), 0.1, true);
          },
        },
        x: spec.time ? { time: true } : {
          time: false,
          range: function (u, min, max) {
            return min === first && max === last ? whole : [min, max];
          },
        },
      },
      series: series,
      axes: [
        {
          stroke: "#57606a",
          grid: { stroke: "#eceff2" },
          ticks: { stroke: "#d0d7de" },
          values: function (u, splits) { return splits.map(xTick); },
          space: spec.time ? 60 : 28,
          incrs: spec.time ? undefined : [1, 2, 5, 10],
        },
        {
          label: spec.y_label || "",
          stroke: "#57606a",
          grid: { stroke: "#eceff2" },
          ticks: { stroke: "#d0d7de" },
          size: 64,
          values: function (u, splits) {
            return splits.map(function (v) { return number(v, Math.abs(splits[1] - splits[0]) < 1 ? 1 : 0); });
          },
        },
      ],
      cursor: { drag: { x: true, y: false, setScale: true }, points: { size: 8 } },
      legend: { live: true },
    };
    if (spec.time) {
      opts.tzDate = localDate;
    }

    plot.replaceChildren();
    const u = new uPlot(opts, data, plot);
    figure.dataset.ready = "true";

    function zoom(factor) {
      const scale = u.scales.x;
      const mid = (scale.min + scale.max) / 2;
      let half = ((scale.max - scale.min) / 2) * factor;
      const full = (whole[1] - whole[0]) / 2;
      half = Math.min(half, full);
      let lo = Math.max(whole[0], mid - half);
      let hi = Math.min(whole[1], lo + 2 * half);
      lo = Math.max(whole[0], hi - 2 * half);
      u.setScale("x", { min: lo, max: hi });
    }

    const tools = figure.querySelector(".chart-tools");
    if (tools) {
      const zoomIn = lang === "en-US" ? "Zoom in" : "확대";
      const zoomOut = lang === "en-US" ? "Zoom out" : "축소";
      tools.prepend(
        button("+", zoomIn, function () { zoom(0.5); }),
        button("\u2212", zoomOut, function () { zoom(2); }),
        button(spec.reset || "Reset", spec.reset || "Reset", function () {
          u.setScale("x", { min: whole[0], max: whole[1] });
        }),
      );
    }

    // touch: show the values under the finger (the legend), as hovering does
    function touched(event) {
      const t = event.touches[0];
      if (!t) {
        return;
      }
      const box = u.over.getBoundingClientRect();
      u.setCursor({ left: t.clientX - box.left, top: t.clientY - box.top });
    }
    u.over.addEventListener("touchstart", touched, { passive: true });
    u.over.addEventListener("touchmove", touched, { passive: true });

    if (typeof ResizeObserver !== "undefined") {
      let width = plot.clientWidth;
      new ResizeObserver(function () {
        if (plot.clientWidth !== width) {
          width = plot.clientWidth;
          u.setSize({ width: Math.max(width, 200), height: height() });
        }
      }).observe(plot);
    }
  }

  function start() {
    document.querySelectorAll("figure.chart[data-chart]").forEach(build);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
