// fio's log files (--write_iops_log, --write_bw_log, --write_lat_log with --log_avg_msec), named
// and laid out as fio writes them, so that fio_generate_plots and fio2gnuplot read them: one
// file per job (NAME_iops.1.log, ...; jobs numbered from 1 across the runs), a line per
// averaging window and data direction: "msec, value, direction (0 read, 1 write, 2 trim),
// block size (0 for averaged samples), offset".
import { writeFileSync } from "node:fs";
import { DIRECTIONS, perSecond, windows, type JobResult, type WindowCounts } from "./job-result.js";
import type { RunReport } from "./report.js";

type Value = (c: WindowCounts, windowMs: number) => number;

/** The window's mean latency (ns): total and completion latency are the same here. */
const meanLatency: Value = (c) => (c.ios ? Math.round(c.latNs / c.ios) : 0);

/** What one kind of log holds per window. */
const KINDS = {
  iops: (c, ms) => Math.round(perSecond(c.ios, ms)),
  bw: (c, ms) => Math.round(perSecond(c.bytes / 1024, ms)),
  lat: meanLatency,
  clat: meanLatency,
  // Submission latency is not measured apart: requests are on the ring the moment they are made.
  slat: () => 0,
} satisfies Record<string, Value>;

/** One log's text for one job. */
function fioLog(job: JobResult, kind: keyof typeof KINDS): string {
  const value = KINDS[kind];
  const dirs = DIRECTIONS.map((d) => job[d].ios > 0);
  const lines: string[] = [];
  for (const w of windows(job)) {
    for (const d of [0, 1, 2] as const) if (dirs[d]) lines.push(`${Math.round(w.endMs)}, ${value(w.dir[d], w.ms)}, ${d}, 0, 0`);
  }
  return lines.length ? `${lines.join("\n")}\n` : "";
}

/** Writes the logs a run's jobs ask for; `first` is the number of the run's first job (from 1). */
export function writeFioLogs(r: RunReport, first: number): void {
  for (const j of r.results) {
    const o = r.jobs[j.job];
    const write = (stem: string | undefined, kinds: (keyof typeof KINDS)[]) => {
      if (stem) for (const kind of kinds) writeFileSync(`${stem}_${kind}.${first + j.index}.log`, fioLog(j, kind));
    };
    write(o.iopsLog, ["iops"]);
    write(o.bwLog, ["bw"]);
    write(o.latLog, ["lat", "clat", "slat"]);
  }
}
