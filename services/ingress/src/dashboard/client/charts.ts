import uPlot from "./uplot.js";
import { h } from "./dom.js";
import { stackBars } from "./format.js";

/**
 * Time charts of the overview, drawn by uPlot (its own ES module build,
 * served by the ingress: no bundler, no CDN). Colours are the Okabe–Ito
 * palette, which stays distinct for the common kinds of colour blindness;
 * lines that share a chart also differ in dash, so no reading depends on
 * colour alone. Hovering a bucket shows every series' value for it in the
 * legend under the chart; the chart fills its panel's width (down to a
 * 390 px phone) and redraws when that changes.
 */

/** Okabe & Ito, "Color Universal Design" (2002): eight colours told apart by every common colour vision. */
export const OKABE_ITO = {
  orange: "#E69F00",
  skyBlue: "#56B4E9",
  bluishGreen: "#009E73",
  yellow: "#F0E442",
  blue: "#0072B2",
  vermillion: "#D55E00",
  reddishPurple: "#CC79A7",
  grey: "#999999",
} as const;

/** One drawn series. */
export interface ChartSeries {
  label: string;
  color: string;
  values: (number | null)[];
  /** `bars` are stacked in series order, bottom first; `line`s are drawn over them. */
  kind: "bars" | "line";
  /** A dash pattern for lines (canvas setLineDash), e.g. [6, 4]. */
  dash?: number[];
  /** Which y axis: the left (default) or the right one. */
  axis?: "left" | "right";
  /** How the legend (and the axis, unless `axisFormat`) writes a value. */
  format: (v: number) => string;
  /** How the axis writes a value, when shorter than the legend's. */
  axisFormat?: (v: number) => string;
}

/** What a chart draws: buckets (their starts, in seconds) and the series over them. */
export interface ChartData {
  /** Bucket starts, epoch seconds, oldest first. */
  starts: number[];
  bucketSeconds: number;
  series: ChartSeries[];
  /** Formats a bucket for the legend (hovered bucket). */
  bucketLabel: (startSeconds: number) => string;
  /** Fixed range of the right axis, e.g. [0, 100] for a percentage. */
  rightRange?: [number, number];
  /** The left axis counts things: ticks on whole numbers only. */
  integerLeft?: boolean;
  /** How an x axis tick (epoch seconds) reads. */
  tickLabel: (seconds: number) => string;
}

/** A chart in a panel: `update` redraws with new data (same series), `destroy` removes it. */
export interface Chart {
  el: HTMLElement;
  update(data: ChartData): void;
  destroy(): void;
}

const cssVar = (name: string, fallback: string) => getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;

/** What the chart's callbacks read: replaced on update, so that new data redraws in place. */
interface ChartState {
  data: ChartData;
  stacks: { y0: number[]; y1: number[] }[];
}

function stateOf(data: ChartData): ChartState {
  return { data, stacks: stackBars(data.series.filter((s) => s.kind === "bars").map((s) => s.values)) };
}

function options(state: ChartState, width: number, height: number): uPlot.Options {
  const data = state.data;
  const text = cssVar("--muted", "#5f6b7a");
  const grid = cssVar("--line", "#dde2e8");
  const bars = data.series.filter((s) => s.kind === "bars");
  const axisFormat = (s: ChartSeries | undefined) => s?.axisFormat ?? s?.format ?? String;
  const leftFormat = axisFormat(data.series.find((s) => (s.axis ?? "left") === "left"));
  const rightFormat = axisFormat(data.series.find((s) => s.axis === "right"));
  const hasRight = data.series.some((s) => s.axis === "right");
  const axis = (side: 1 | 3, format: (v: number) => string, scale: string, integers = false): uPlot.Axis => ({
    scale,
    side,
    stroke: text,
    grid: { stroke: grid, width: 1, show: side === 3 },
    ticks: { show: false },
    size: side === 3 ? 56 : 44,
    ...(integers ? { incrs: INTEGER_STEPS } : {}),
    values: (_u, vals) => vals.map((v) => (v == null ? "" : format(v))),
  });
  return {
    width,
    height,
    // The x values are bucket centres, so that hovering a bucket's middle picks that bucket.
    scales: {
      x: {
        time: true,
        range: () => [state.data.starts[0] ?? 0, (state.data.starts.at(-1) ?? 0) + state.data.bucketSeconds],
      },
      y: {
        range: (_u, _min, max) => {
          const top = Math.max(max ?? 0, ...state.stacks.map((s) => Math.max(0, ...s.y1)));
          return [0, top > 0 ? top * 1.08 : 1];
        },
      },
      ...(hasRight ? { r: { range: data.rightRange ?? ((_u, _min, max) => [0, max > 0 ? max * 1.08 : 1]) } } : {}),
    },
    legend: { live: true },
    cursor: { points: { show: true }, drag: { x: false, y: false } },
    axes: [
      {
        stroke: text,
        grid: { stroke: grid, width: 1 },
        ticks: { show: false },
        space: data.bucketSeconds >= 900 ? 90 : 60,
        values: (_u, vals) => vals.map((v) => (v == null ? "" : state.data.tickLabel(v))),
      },
      axis(3, leftFormat, "y", data.integerLeft),
      ...(hasRight ? [axis(1, rightFormat, "r")] : []),
    ],
    series: [
      { label: "Interval", value: (_u, v) => (v == null ? "—" : state.data.bucketLabel(v - state.data.bucketSeconds / 2)) },
      ...data.series.map((s, i): uPlot.Series => {
        const barIndex = bars.indexOf(s);
        return {
          label: s.label,
          scale: s.axis === "right" ? "r" : "y",
          stroke: s.color,
          width: s.kind === "bars" ? 0 : 2,
          ...(s.dash ? { dash: s.dash } : {}),
          ...(s.kind === "bars" ? { fill: s.color } : {}),
          value: (_u, v) => (v == null ? "—" : state.data.series[i]!.format(v)),
          points: { show: s.kind === "line", size: 5 },
          spanGaps: false,
          ...(s.kind === "bars"
            ? {
                paths: uPlot.paths.bars!({
                  size: [0.8, 40],
                  align: 0,
                  disp: {
                    y0: { unit: 1, values: () => state.stacks[barIndex]!.y0 },
                    y1: { unit: 1, values: () => state.stacks[barIndex]!.y1 },
                  },
                }),
              }
            : {}),
        };
      }),
    ],
  };
}

/** Tick steps of an axis that counts: whole numbers only (1, 2, 5, 10, 20, 50, ...). */
const INTEGER_STEPS = [1, 2, 5].flatMap((m) => [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000].map((p) => m * p)).sort((a, b) => a - b);

/** Same series (labels, kinds, axes) and bucket size: new data can be drawn into the same chart. */
function sameShape(a: ChartData, b: ChartData): boolean {
  return (
    a.bucketSeconds === b.bucketSeconds &&
    a.series.length === b.series.length &&
    a.series.every((s, i) => s.label === b.series[i]!.label && s.kind === b.series[i]!.kind && s.axis === b.series[i]!.axis)
  );
}

/** Draws `data` into a new element in `container`, as wide as it; redraws on resize. */
export function createChart(container: HTMLElement, data: ChartData, height = 220): Chart {
  const el = h("div", { class: "chart" });
  container.appendChild(el);
  // The chart element is a block as wide as its panel's content box: the plot takes that width.
  const widthOf = () => Math.max(200, Math.floor(el.clientWidth || container.clientWidth || 600));
  const state = stateOf(data);
  let width = widthOf();
  let plot = new uPlot(options(state, width, height), toAligned(data), el);
  const resize = new ResizeObserver(() => {
    const w = widthOf();
    if (w !== width) {
      width = w;
      plot.setSize({ width, height });
    }
  });
  resize.observe(el);
  return {
    el,
    update(next) {
      const reuse = sameShape(state.data, next);
      Object.assign(state, stateOf(next));
      if (reuse) {
        // Keeps the hovered bucket and the legend as they are.
        plot.setData(toAligned(next));
      } else {
        plot.destroy();
        plot = new uPlot(options(state, width, height), toAligned(next), el);
      }
    },
    destroy() {
      resize.disconnect();
      plot.destroy();
      el.remove();
    },
  };
}

function toAligned(data: ChartData): uPlot.AlignedData {
  const half = data.bucketSeconds / 2;
  return [data.starts.map((s) => s + half), ...data.series.map((s) => s.values)] as uPlot.AlignedData;
}
