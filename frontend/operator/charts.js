// Time-series charts of GET /api/v1/operators/metrics (one point a minute), drawn with uPlot
// (npm, pinned). Counts the server withheld (1 … k − 1) arrive as null and show as gaps.
import uPlot from "/static/node_modules/uplot/dist/uPlot.esm.js";
import { locale, t } from "../i18n.js";

/** Axis and legend times in the page's language ("13:05"), not uPlot's English "1:05pm". */
function clock(seconds) {
  return new Intl.DateTimeFormat(locale(), { hour: "2-digit", minute: "2-digit" }).format(new Date(seconds * 1000));
}

const CHARTS = [
  { id: "chart-reports", series: [{ key: "reports_per_minute", label: () => t("ops.chart.reports"), stroke: "#1f4e79" }] },
  { id: "chart-index", series: [{ key: "congestion_index", label: () => t("ops.chart.index"), stroke: "#c0262d" }] },
  { id: "chart-trips", series: [{ key: "active_trips", label: () => t("ops.chart.trips"), stroke: "#2e7d4f" }] },
  {
    id: "chart-suggestions",
    series: [
      { key: "suggestions_made", label: () => t("ops.chart.made"), stroke: "#7a4bb5" },
      { key: "suggestions_accepted", label: () => t("ops.chart.accepted"), stroke: "#c98a00" },
    ],
  },
];

export class Charts {
  constructor() {
    this.plots = new Map();
    this.status = document.getElementById("charts-status");
    this.resizeObserver = new ResizeObserver(() => this.resize());
    for (const chart of CHARTS) this.resizeObserver.observe(document.getElementById(chart.id));
  }

  size(element) {
    return { width: Math.max(200, element.clientWidth), height: 150 };
  }

  resize() {
    for (const chart of CHARTS) {
      const plot = this.plots.get(chart.id);
      if (plot) plot.setSize(this.size(document.getElementById(chart.id)));
    }
  }

  /** Draw (or redraw) every chart from a metrics answer. */
  render(metrics, hours = 3) {
    const times = metrics?.t ?? [];
    // the x axis always spans the hours asked for, however few samples there are yet
    this.end = Date.now() / 1000;
    this.start = this.end - hours * 3600;
    for (const chart of CHARTS) {
      const element = document.getElementById(chart.id);
      const data = [times, ...chart.series.map((s) => metrics[s.key] ?? [])];
      const plot = this.plots.get(chart.id);
      if (plot) {
        plot.setData(data, true);
        continue;
      }
      const options = {
        ...this.size(element),
        legend: { show: chart.series.length > 1 },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true, range: () => [this.start, this.end] }, y: { range: (u, min, max) => [0, Math.max(1, max ?? 1)] } },
        axes: [
          { stroke: "#3d4650", values: (u, splits) => splits.map((v) => (v === null ? "" : clock(v))) },
          { stroke: "#3d4650", size: 44, values: (u, splits) => splits.map((v) => (v === null ? "" : new Intl.NumberFormat(locale()).format(v))) },
        ],
        series: [{ label: t("ops.chart.time"), value: (u, v) => (v === null ? "--" : clock(v)) }, ...chart.series.map((s) => ({ label: s.label(), stroke: s.stroke, width: 2, spanGaps: false }))],
      };
      this.plots.set(chart.id, new uPlot(options, data, element));
    }
    const last = (key) => {
      const values = metrics?.[key] ?? [];
      return values.length ? values[values.length - 1] : undefined;
    };
    const k = metrics?.k ?? 2;
    for (const chart of CHARTS) {
      const element = document.getElementById(chart.id);
      const text = chart.series.map((s) => {
        const v = last(s.key);
        const value = v === null ? t("ops.fewer_than", { k }) : v === undefined ? t("ops.chart.no_data") : v;
        return t("ops.chart.value", { label: s.label(), value });
      }).join(", ");
      const caption = document.getElementById(`${chart.id}-title`)?.textContent ?? "";
      element.removeAttribute("aria-labelledby");
      element.setAttribute("aria-label", t("ops.chart.aria", { caption, text }));
    }
    this.status.textContent = times.length
      ? (k === 2 ? t("ops.chart.shown_k2", { count: times.length, n: times.length })
        : t("ops.chart.shown", { count: times.length, n: times.length, max: k - 1 }))
      : t("ops.chart.none");
  }
}
