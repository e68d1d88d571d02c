// Progressive enhancement only: every page reads without JavaScript. Charts are drawn with uPlot from JSON
// data islands (<script type="application/json">, never executed); htmx handles partial refreshes.
"use strict";

(function () {
  const palette = ["#4f46e5", "#0ea5e9", "#16a34a", "#f59e0b", "#db2777", "#7c3aed"];

  function dayToSeconds(yyyymmdd) {
    const y = +yyyymmdd.slice(0, 4), m = +yyyymmdd.slice(4, 6) - 1, d = +yyyymmdd.slice(6, 8);
    return Date.UTC(y, m, d) / 1000;
  }

  function drawChart(element) {
    if (element.dataset.drawn || typeof uPlot === "undefined") return;
    const source = document.getElementById(element.dataset.source);
    if (!source) return;
    const data = JSON.parse(source.textContent);
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
