// Progressive enhancement only: every page reads without JavaScript. Charts are drawn with uPlot from JSON
// data islands (<script type="application/json">, never executed); htmx handles partial refreshes.
"use strict";

(function () {
  const palette = ["#4f46e5", "#0ea5e9", "#16a34a", "#f59e0b", "#db2777", "#7c3aed"];

  function dayToSeconds(yyyymmdd) {
    const y = +yyyymmdd.slice(0, 4), m = +yyyymmdd.slice(4, 6) - 1, d = +yyyymmdd.slice(6, 8);
    return Date.UTC(y, m, d) / 1000;
  }

  function drawBars(element, data) {
    const groups = Math.max(1, data.series.length);
    const width = 0.8 / groups;
    const xs = data.x.map((_, i) => i);
    const series = [{}].concat(
      data.series.map((s, g) => ({
        label: s.label,
        fill: palette[g % palette.length],
        stroke: palette[g % palette.length],
        width: 0,
        points: { show: false },
        paths: uPlot.paths.bars({
          disp: {
            x0: { unit: 1, values: () => xs.map((i) => i - 0.4 + g * width) },
            size: { unit: 1, values: () => xs.map(() => width * 0.92) },
          },
        }),
      }))
    );
    const options = {
      width: Math.max(320, element.clientWidth),
      height: 280,
      series: series,
      scales: { x: { time: false, range: [-0.5, xs.length - 0.5] }, y: { range: (u, min, max) => [0, Math.max(1, max) * 1.1] } },
      axes: [
        { stroke: "#667085", grid: { show: false }, splits: () => xs, values: (u, splits) => splits.map((v) => data.x[v] ?? "") },
        { stroke: "#667085", grid: { stroke: "#eef0f4" } },
      ],
      cursor: { drag: { x: false, y: false } },
    };
    element.dataset.drawn = "1";
    const plot = new uPlot(options, [xs].concat(data.series.map((s) => s.values)), element);
    new ResizeObserver(() => plot.setSize({ width: Math.max(320, element.clientWidth), height: 280 })).observe(element);
  }

  function drawChart(element) {
    if (element.dataset.drawn || typeof uPlot === "undefined") return;
    const source = document.getElementById(element.dataset.source);
    if (!source) return;
    const data = JSON.parse(source.textContent);
    if (element.dataset.chart === "bars") return drawBars(element, data);
    const xs = data.x.map((x) => (/^\d{8}$/.test(String(x)) ? dayToSeconds(String(x)) : x));
    const series = [{}].concat(
      data.series.map((s, i) => ({
        label: s.label,
        stroke: palette[i % palette.length],
        width: 2,
        fill: i === 0 ? "rgba(79, 70, 229, 0.08)" : undefined,
        points: { show: xs.length < 40 },
      }))
    );
    const width = Math.max(320, element.clientWidth);
    const options = {
      width: width,
      height: 280,
      series: series,
      axes: [{ stroke: "#667085", grid: { stroke: "#eef0f4" } }, { stroke: "#667085", grid: { stroke: "#eef0f4" } }],
      scales: { x: { time: typeof xs[0] === "number" && xs[0] > 1e8 } },
      cursor: { drag: { x: false, y: false } },
    };
    element.dataset.drawn = "1";
    const plot = new uPlot(options, [xs].concat(data.series.map((s) => s.values)), element);
    new ResizeObserver(() => plot.setSize({ width: Math.max(320, element.clientWidth), height: 280 })).observe(element);
  }

  function drawAll(root) {
    root.querySelectorAll("[data-chart]").forEach(drawChart);
  }

  document.addEventListener("DOMContentLoaded", () => drawAll(document));
  document.addEventListener("htmx:afterSettle", (event) => drawAll(event.target));
})();
