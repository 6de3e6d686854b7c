// The VM page's graphs: CPU, memory, network and disk use over the last hour, day or week, drawn
// with uPlot, as wide as the page lets them be. Each chart has a heading, a name for screen
// readers and a line of text with the latest and highest values. The series is read again no more
// often than a new point can come (a minute for the hour), not at each of the page's updates.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { api, explain, type Schemas, unwrap } from '../api';
import { h, notice, say, time } from '../dom';
import type { CustomerVm, Section } from './vm-sections';

type Timeframe = Schemas['Timeframe'];
type Point = Schemas['GraphPoint'];
type Value = number | null | undefined;

const TIMEFRAMES: [Timeframe, string, string][] = [
  ['hour', 'Last hour', 'a point a minute'],
  ['day', 'Last day', 'a point every 30 minutes'],
  ['week', 'Last week', 'a point every 3 hours'],
];

/** How long a series stays current: about one of its steps (and at least a minute). */
const FRESH_MS: Record<Timeframe, number> = { hour: 60_000, day: 10 * 60_000, week: 30 * 60_000 };

const HEIGHT = 180;

/** A byte count for an axis or a summary: "0 B", "512 B", "1.5 KiB", "120 MiB". */
function size(n: number): string {
  for (const [unit, step] of [['TiB', 1024 ** 4], ['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
    const value = n / step;
    if (value >= 1) return `${value < 10 ? value.toFixed(1).replace(/\.0$/, '') : Math.round(value)} ${unit}`;
  }
  return `${Math.round(n)} B`;
}

const percent = (v: Value) => (v === null || v === undefined ? '—' : `${v < 10 ? v.toFixed(1) : Math.round(v)} %`);
const amount = (v: Value) => (v === null || v === undefined ? '—' : size(v));
const rate = (v: Value) => (v === null || v === undefined ? '—' : `${size(v)}/s`);

/** Steps for byte axes: 1, 2, 5 × powers of 1024, so that ticks read "200 KiB", not "195 KiB". */
const BYTE_INCRS = [0, 1, 2, 3, 4].flatMap((power) => [1, 2, 5, 10, 20, 50, 100, 200, 500].map((m) => m * 1024 ** power));

interface SeriesSpec {
  label: string;
  key: keyof Point;
  stroke: string;
  dash?: number[];
  fill?: string;
}

interface ChartSpec {
  key: string;
  title: string;
  /** What it shows, for the chart's name: "CPU use" + " over the last hour". */
  what: string;
  series: SeriesSpec[];
  /** Formats one value, on the axis, in the legend and in the summary. */
  format: (v: Value) => string;
  bytes: boolean;
  /** The scale's top for a highest value of `max` (0 when there is nothing). */
  top: (max: number) => number;
  summary: (latest: Value[], highest: Value[]) => string;
}

const CHARTS: ChartSpec[] = [
  {
    key: 'cpu', title: 'CPU', what: 'CPU use, in percent of its cores,', format: percent, bytes: false,
    series: [{ label: 'CPU', key: 'cpu', stroke: '#1f5fbf', fill: 'rgba(31, 95, 191, 0.12)' }],
    top: (max) => Math.max(100, max),
    summary: ([now], [most]) => `Latest ${percent(now)} of its cores; highest ${percent(most)}.`,
  },
  {
    key: 'memory', title: 'Memory', what: 'Memory in use and its size', format: amount, bytes: true,
    series: [
      { label: 'Used', key: 'memory', stroke: '#1f5fbf', fill: 'rgba(31, 95, 191, 0.12)' },
      { label: 'Size', key: 'memory_max', stroke: '#5b6570', dash: [6, 4] },
    ],
    top: (max) => (max > 0 ? max * 1.05 : 1024 ** 3),
    summary: ([used, total], [most]) => `Latest ${amount(used)} used of ${amount(total)}; highest ${amount(most)}.`,
  },
  {
    key: 'network', title: 'Network', what: 'Network traffic in and out, per second,', format: rate, bytes: true,
    series: [
      { label: 'In', key: 'net_in', stroke: '#1f5fbf' },
      { label: 'Out', key: 'net_out', stroke: '#b35900', dash: [6, 4] },
    ],
    top: (max) => (max > 0 ? max * 1.1 : 1024),
    summary: ([inbound, outbound], [inMost, outMost]) => `Latest in ${rate(inbound)}, out ${rate(outbound)}; highest in ${rate(inMost)}, out ${rate(outMost)}.`,
  },
  {
    key: 'disk', title: 'Disk I/O', what: 'Disk reads and writes, per second,', format: rate, bytes: true,
    series: [
      { label: 'Read', key: 'disk_read', stroke: '#1e7b34' },
      { label: 'Write', key: 'disk_write', stroke: '#8a3ab9', dash: [6, 4] },
    ],
    top: (max) => (max > 0 ? max * 1.1 : 1024),
    summary: ([read, write], [readMost, writeMost]) => `Latest read ${rate(read)}, write ${rate(write)}; highest read ${rate(readMost)}, write ${rate(writeMost)}.`,
  },
];

/** The last value that is there, and the highest. */
function latestAndHighest(values: Value[]): [Value, Value] {
  let latest: Value = null;
  let highest: Value = null;
  for (const v of values) {
    if (v === null || v === undefined) continue;
    latest = v;
    highest = highest === null || highest === undefined || v > highest ? v : highest;
  }
  return [latest, highest];
}

/** One chart: its figure, and the uPlot drawn in it once there is a series. */
class Chart {
  readonly element: HTMLElement;
  readonly box: HTMLElement;
  private readonly summary: HTMLElement;
  private plot: uPlot | undefined;

  constructor(private readonly spec: ChartSpec) {
    this.box = h('div', { class: 'chart-plot' });
    this.summary = h('p', { class: 'chart-summary', id: `graph-${spec.key}-summary` });
    this.element = h('figure', { class: 'chart', id: `graph-${spec.key}`, 'aria-labelledby': `graph-${spec.key}-h` },
      h('h3', { id: `graph-${spec.key}-h` }, spec.title), this.box, this.summary);
  }

  draw(points: Point[], frame: string): void {
    const xs = points.map((p) => p.time);
    const columns = this.spec.series.map((s) => points.map((p) => p[s.key] ?? null));
    const data: uPlot.AlignedData = [xs, ...columns];
    if (this.plot) this.plot.setData(data);
    else this.plot = this.create(data);
    const stats = columns.map(latestAndHighest);
    this.summary.textContent = points.length
      ? this.spec.summary(stats.map(([latest]) => latest), stats.map(([, highest]) => highest))
      : 'No values for this timeframe.';
    const canvas = this.plot.ctx.canvas;
    canvas.setAttribute('aria-label', `${this.spec.what} over the ${frame.toLowerCase()}`);
  }

  private create(data: uPlot.AlignedData): uPlot {
    const { spec } = this;
    const plot = new uPlot({
      width: this.width(),
      height: HEIGHT,
      cursor: { sync: { key: 'vm-graphs' }, drag: { x: false, y: false } },
      legend: { live: true },
      scales: {
        y: { range: (_u, _min, max) => [0, spec.top(Number.isFinite(max) ? max : 0)] },
      },
      axes: [
        { stroke: '#5b6570', grid: { stroke: '#e3e7ec' } },
        {
          stroke: '#5b6570',
          grid: { stroke: '#e3e7ec' },
          size: spec.bytes ? 72 : 50,
          ...(spec.bytes ? { incrs: BYTE_INCRS } : {}),
          values: (_u, splits) => splits.map((v) => (spec.bytes ? size(v) : `${v} %`)),
        },
      ],
      series: [
        {},
        ...spec.series.map((s) => ({
          label: s.label, stroke: s.stroke, width: 2, dash: s.dash, fill: s.fill,
          value: (_u: uPlot, v: number | null) => spec.format(v),
          points: { show: false },
        })),
      ],
    }, data, this.box);
    const canvas = plot.ctx.canvas;
    canvas.setAttribute('role', 'img');
    canvas.setAttribute('aria-describedby', this.summary.id);
    // What the legend says on hover, the summary says for everyone.
    plot.root.querySelector('.u-legend')?.setAttribute('aria-hidden', 'true');
    return plot;
  }

  private width(): number {
    return Math.max(200, Math.floor(this.box.clientWidth || this.element.clientWidth || 300));
  }

  fit(): void {
    if (!this.plot) return;
    const width = this.width();
    if (width !== this.plot.width) this.plot.setSize({ width, height: HEIGHT });
  }

  destroy(): void {
    this.plot?.destroy();
    this.plot = undefined;
  }
}

export function graphsSection(id: number): Section & { stop(): void } {
  let timeframe: Timeframe = 'hour';
  /** When the series shown was asked for (0: never), and which request is the latest. */
  let askedAt = 0;
  let asked = 0;
  let state: string | undefined;

  const status = notice();
  status.id = 'graphs-status';
  const range = h('p', { class: 'hint', id: 'graphs-range' });
  const charts = CHARTS.map((spec) => new Chart(spec));
  const grid = h('div', { class: 'charts', id: 'graph-charts', hidden: true }, ...charts.map((c) => c.element));
  const switches = TIMEFRAMES.map(([frame, label]) => h('button', {
    type: 'button', class: 'secondary small', 'data-timeframe': frame, 'aria-pressed': String(frame === timeframe),
    onclick: () => {
      if (frame === timeframe) return;
      timeframe = frame;
      for (const b of switches) b.setAttribute('aria-pressed', String(b.dataset.timeframe === frame));
      void load();
    },
  }, label));

  const load = async () => {
    const request = ++asked;
    const frame = timeframe;
    askedAt = Date.now();
    element.setAttribute('aria-busy', 'true');
    try {
      const graphs = await unwrap(api.GET('/vms/{id}/graphs', { params: { path: { id }, query: { timeframe: frame } } }));
      if (request !== asked) return;
      const [, label, step] = TIMEFRAMES.find(([f]) => f === graphs.timeframe) ?? TIMEFRAMES[0];
      const last = graphs.points.at(-1)?.time;
      range.textContent = `${label}, ${step}${last ? `, up to ${time(last)}` : ''}.`;
      say(status, '');
      grid.hidden = false;
      for (const chart of charts) chart.draw(graphs.points, label);
    } catch (err) {
      if (request !== asked) return;
      // A VM not active yet has no graphs; the reason stands in for them.
      say(status, explain(err), 'info');
      range.textContent = '';
      grid.hidden = true;
    } finally {
      if (request === asked) element.removeAttribute('aria-busy');
    }
  };

  // Charts follow the width of the page: a phone's, a window made narrower.
  const resized = new ResizeObserver(() => {
    for (const chart of charts) chart.fit();
  });
  for (const chart of charts) resized.observe(chart.box);

  const element = h('section', { 'aria-labelledby': 'graphs-h', id: 'graphs' },
    h('h2', { id: 'graphs-h' }, 'Graphs'),
    h('div', { class: 'actions', role: 'group', 'aria-label': 'Timeframe' }, ...switches),
    range, status, grid);
  void load();

  return {
    element,
    update(vm: CustomerVm) {
      // A VM that became active has graphs now; otherwise the series is read again once stale.
      const changed = state !== undefined && vm.state !== state;
      state = vm.state;
      if (changed || Date.now() - askedAt >= FRESH_MS[timeframe]) void load();
    },
    stop() {
      resized.disconnect();
      for (const chart of charts) chart.destroy();
    },
  };
}
