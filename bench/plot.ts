// --plot=FILE.svg: the run as a picture, in plain SVG (no tool, no browser needed to make it):
// IOPS over time per job (from the --log_avg_msec windows) beside the latency percentile curve,
// read and write, on a "nines" scale (50 %, 90 %, 99 %, 99.9 %, ...) with latency on a log axis.
import type { Histogram } from "hdr-histogram-js";
import { DIRECTIONS, mergedLatencies, perSecond, windows, type JobResult } from "./job-result.js";
import type { RunReport } from "./report.js";

const W = 1000;
const H = 400;
const PANEL = { w: 400, h: 290, top: 50 };
const LEFT = [70, 550];
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");
const fmt = (n: number) => (n >= 1e6 ? `${+(n / 1e6).toPrecision(3)}M` : n >= 1e3 ? `${+(n / 1e3).toPrecision(3)}k` : `${Math.round(n)}`);
const fmtNs = (ns: number) => (ns >= 1e6 ? `${+(ns / 1e6).toPrecision(3)} ms` : ns >= 1e3 ? `${+(ns / 1e3).toPrecision(3)} µs` : `${Math.round(ns)} ns`);

/** A round step (1, 2 or 5 times a power of ten) that cuts `max` into about `n` parts. */
function niceStep(max: number, n: number): number {
  const raw = max / n;
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * p).find((st) => st >= raw)!;
}

/** A panel frame with a title and axis labels. */
function frame(x: number, title: string, xLabel: string, yLabel: string): string {
  const { w, h, top } = PANEL;
  return [
    `<text x="${x + w / 2}" y="${top - 18}" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<rect x="${x}" y="${top}" width="${w}" height="${h}" fill="none" stroke="#444"/>`,
    `<text x="${x + w / 2}" y="${top + h + 40}" text-anchor="middle" font-size="12">${esc(xLabel)}</text>`,
    `<text transform="translate(${x - 52},${top + h / 2}) rotate(-90)" text-anchor="middle" font-size="12">${esc(yLabel)}</text>`,
  ].join("\n");
}

const polyline = (pts: [number, number][], color: string) =>
  `<polyline fill="none" stroke="${color}" stroke-width="1.8" points="${pts.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(" ")}"/>`;

/** IOPS per window, per job (every direction together). */
function iopsPanel(jobs: JobResult[]): string {
  const x0 = LEFT[0];
  const { w, h, top } = PANEL;
  const series = jobs.map((j) => [...windows(j)].map((w): [number, number] => [w.endMs / 1000, perSecond(w.dir[0].ios + w.dir[1].ios + w.dir[2].ios, w.ms)]));
  const tMax = Math.max(1e-3, ...series.flatMap((s) => s.map((p) => p[0])));
  const peak = Math.max(1, ...series.flatMap((s) => s.map((p) => p[1]))) * 1.05;
  const yStep = niceStep(peak, 5);
  const yMax = yStep * Math.ceil(peak / yStep);
  const tStep = niceStep(tMax, 6);
  const out = [frame(x0, "IOPS over time", "seconds", "IOPS")];
  for (let v = 0; v <= yMax + yStep / 2; v += yStep) {
    const y = top + h - (v / yMax) * h;
    out.push(
      `<line x1="${x0}" x2="${x0 + w}" y1="${y}" y2="${y}" stroke="#ddd"/>`,
      `<text x="${x0 - 6}" y="${y + 4}" text-anchor="end" font-size="11">${fmt(v)}</text>`,
    );
  }
  for (let t = 0; t <= tMax + 1e-9; t += tStep)
    out.push(`<text x="${x0 + (t / tMax) * w}" y="${top + h + 16}" text-anchor="middle" font-size="11">${+t.toPrecision(3)}</text>`);
  series.forEach((s, i) => {
    out.push(
      polyline(
        s.map(([t, v]) => [x0 + (t / tMax) * w, top + h - (v / yMax) * h]),
        COLORS[i % COLORS.length],
      ),
    );
    out.push(
      `<text x="${x0 + w - 8}" y="${top + 18 + 16 * i}" text-anchor="end" font-size="12" fill="${COLORS[i % COLORS.length]}">job ${i + 1}: ${esc(jobs[i].name)}</text>`,
    );
  });
  return out.join("\n");
}

/** Latency at percentiles from 0 to 99.999 %, per direction, on the nines scale. */
function latencyPanel(jobs: JobResult[]): string {
  const x0 = LEFT[1];
  const { w, h, top } = PANEL;
  const dirs: [string, Histogram][] = DIRECTIONS.map((d) => [d, mergedLatencies(jobs.map((j) => j[d]))]);
  const nines = 5; // up to 99.999 %
  const px = (p: number) => x0 + (Math.log10(1 / (1 - p / 100)) / nines) * w;
  const live = dirs.filter(([, hh]) => hh.totalCount > 0);
  const lo = Math.max(1, Math.min(...live.map(([, hh]) => hh.minNonZeroValue)));
  const hi = Math.max(lo * 10, ...live.map(([, hh]) => hh.maxValue));
  const [l0, l1] = [Math.floor(Math.log10(lo)), Math.ceil(Math.log10(hi))];
  const py = (ns: number) => top + h - ((Math.log10(Math.max(ns, 10 ** l0)) - l0) / (l1 - l0)) * h;
  const out = [frame(x0, "Latency by percentile", "percentile", "latency")];
  for (let e = l0; e <= l1; e++)
    out.push(
      `<line x1="${x0}" x2="${x0 + w}" y1="${py(10 ** e)}" y2="${py(10 ** e)}" stroke="#ddd"/>`,
      `<text x="${x0 - 6}" y="${py(10 ** e) + 4}" text-anchor="end" font-size="11">${fmtNs(10 ** e)}</text>`,
    );
  for (const p of [0, 90, 99, 99.9, 99.99, 99.999]) out.push(`<text x="${px(p)}" y="${top + h + 16}" text-anchor="middle" font-size="11">${p}%</text>`);
  live.forEach(([d, hh], i) => {
    const pts: [number, number][] = [];
    for (let k = 0; k <= 200; k++) {
      const p = 100 * (1 - 10 ** (-(k / 200) * nines));
      pts.push([px(p), py(hh.getValueAtPercentile(p))]);
    }
    const color = COLORS[DIRECTIONS.indexOf(d as (typeof DIRECTIONS)[number])];
    out.push(
      polyline(pts, color),
      `<text x="${x0 + 8}" y="${top + 18 + 16 * i}" font-size="12" fill="${color}">${d}: p50 ${fmtNs(hh.getValueAtPercentile(50))}, p99 ${fmtNs(hh.getValueAtPercentile(99))}</text>`,
    );
  });
  return out.join("\n");
}

/** The picture of the runs: every job's IOPS over its run, and the latencies of all. */
export function plotSvg(reports: RunReport[]): string {
  const o = reports[0].jobs[0];
  const jobs = reports.flatMap((r) => r.results);
  const kinds = [...new Set(reports.flatMap((r) => r.jobs.map((j) => `${j.name}: rw=${j.rw}, bs=${j.bs}, iodepth=${j.iodepth}`)))];
  const title = `${kinds.length === 1 ? kinds[0] : `${kinds.length} jobs`}, jobs=${jobs.length}, queues=${o.queues}, workers=${o.workers}, backstore=${o.backstoreArg}`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="16" text-anchor="middle" font-size="12" fill="#444">${esc(title)}</text>`,
    iopsPanel(jobs),
    latencyPanel(jobs),
    "</svg>",
    "",
  ].join("\n");
}
