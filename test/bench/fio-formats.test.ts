// fio's own tools read the benchmark's output: json+ through fio_jsonplus_clat2csv, the log
// files through fio2gnuplot and fio_generate_plots (Debian package fio, with python3-six and
// gnuplot-nox), and --plot draws a picture with no tool at all.
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { fioBucket, fioBucketValue } from "../../bench/fio-buckets.js";
import { FIO_PERCENTILES } from "../../bench/fio-json.js";
import { has, runBench } from "../helpers/bench-cli.js";

const SIX = has("python3") && spawnSync("python3", ["-c", "import six"]).status === 0;
const CLAT2CSV = has("fio_jsonplus_clat2csv") && SIX;
const FIO2GNUPLOT = has("fio2gnuplot") && SIX;
const GNUPLOT = has("gnuplot");
if (!CLAT2CSV) console.warn("skipped: fio_jsonplus_clat2csv on our json+ needs the Debian packages fio and python3-six");
if (!FIO2GNUPLOT) console.warn("skipped: fio2gnuplot on our logs needs the Debian packages fio and python3-six");
if (!GNUPLOT) console.warn("skipped: fio_generate_plots and fio2gnuplot -g on our logs need gnuplot (Debian package gnuplot-nox)");

const inTmp = async (body: (dir: string) => Promise<void>) => {
  const dir = mkdtempSync(join(tmpdir(), "fio-formats-"));
  try {
    await body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};

/** The options that write all three of fio's logs under one name stem. */
const allLogs = (stem: string) => [`--write_iops_log=${stem}`, `--write_bw_log=${stem}`, `--write_lat_log=${stem}`];

/** The JSON document that follows the text report in a `--output-format=normal,...` run. */
const jsonAfterText = (stdout: string) => JSON.parse(stdout.slice(stdout.indexOf("\n{") + 1));

describe("fio's latency buckets", () => {
  it("names buckets as fio does: the keys of a real fio json+ document are bucket values", () => {
    // clat_ns.bins keys from fio 3.33 --output-format=json+ (psync on a file).
    for (const key of [20864, 30848, 31360, 31616, 31872, 350, 402, 7648, 7712, 257024]) expect(fioBucketValue(fioBucket(key))).toBe(key);
    for (let v = 0; v < 128; v++) expect(fioBucketValue(fioBucket(v))).toBe(v);
  });

  it("a value's bucket stands for it within half a bucket (1/128) and buckets keep the order", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 16e9 }), fc.integer({ min: 1, max: 16e9 }), (a, b) => {
        expect(Math.abs(fioBucketValue(fioBucket(a)) - a)).toBeLessThanOrEqual(a / 128 + 1);
        if (a <= b) expect(fioBucket(a)).toBeLessThanOrEqual(fioBucket(b));
      }),
    );
  });
});

describe("--output-format", () => {
  it("normal,json+ prints the text report, then fio's json+ with every data direction and the bins", async () => {
    const r = await runBench("--output-format=normal,json+", "--rw=randrw", "--runtime=500ms");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^vhost-scsi: \(g=0\): rw=randrw/);
    const doc = jsonAfterText(r.stdout);
    const job = doc.jobs[0];
    for (const d of ["read", "write", "trim", "sync"]) expect(job).toHaveProperty(d);
    for (const d of ["read", "write"]) {
      const clat = job[d].clat_ns;
      expect(clat.N).toBe(job[d].total_ios);
      expect(Object.values(clat.bins as Record<string, number>).reduce((a, b) => a + b, 0)).toBe(clat.N);
      expect(Object.keys(clat.percentile)).toEqual(FIO_PERCENTILES.map((p) => p.toFixed(6)));
      expect(job[d].bw_samples).toBeGreaterThan(0);
      expect(job[d].iops_min).toBeLessThanOrEqual(job[d].iops_max);
    }
    // Nothing trimmed: fio leaves out the percentiles and bins of an empty direction.
    expect(job.trim.total_ios).toBe(0);
    expect(job.trim.clat_ns).not.toHaveProperty("bins");
    expect(job.iodepth_level["32"]).toBe(100);
    const shares = [...Object.values(job.latency_ns), ...Object.values(job.latency_us), ...Object.values(job.latency_ms)] as number[];
    expect(shares.reduce((a, b) => a + b, 0)).toBeCloseTo(100, 6);
    expect(doc.device.workers).toHaveLength(1);
  });

  it("json (not json+) carries no bins", async () => {
    const r = await runBench("--output-format=json", "--runtime=300ms");
    expect(r.code).toBe(0);
    const read = JSON.parse(r.stdout).jobs[0].read;
    expect(read.clat_ns.percentile["50.000000"]).toBeGreaterThan(0);
    expect(read.clat_ns).not.toHaveProperty("bins");
  });

  it.skipIf(!CLAT2CSV)("fio_jsonplus_clat2csv reads our json+ and its percentiles agree with ours within the buckets' precision", () =>
    inTmp(async (dir) => {
      const r = await runBench("--output-format=json+", "--rw=randrw", "--runtime=500ms", "--queues=2", "--numjobs=2", "--busy-poll=0");
      expect(r.code).toBe(0);
      writeFileSync(join(dir, "run.json"), r.stdout);
      const doc = JSON.parse(r.stdout);
      const csv = join(dir, "clat.csv");
      for (const args of [[], ["--validate"]]) {
        const t = spawnSync("fio_jsonplus_clat2csv", [...args, join(dir, "run.json"), csv], { encoding: "utf8" });
        expect(t.stderr).toBe("");
        expect(t.status).toBe(0);
      }
      doc.jobs.forEach((job: Record<string, { clat_ns: { percentile: Record<string, number> } }>, n: number) => {
        const lines = readFileSync(join(dir, `clat_job${n}.csv`), "utf8")
          .trim()
          .split("\n");
        const cols = lines[0].split(",").map((c) => c.trim());
        for (const d of ["read", "write"]) {
          const [at, cum] = [cols.indexOf(`${d}_clat_ns_count`), cols.indexOf(`${d}_clat_ns_percentile`)];
          const rows = lines
            .slice(1)
            .map((l) => l.split(",").map((c) => c.trim()))
            .filter((c) => c[at] !== "");
          for (const [p, ours] of Object.entries(job[d].clat_ns.percentile)) {
            // fio's tool: the first bucket whose cumulative share reaches p.
            const theirs = Number(rows.find((c) => Number(c[cum]) >= Number(p) / 100 - 1e-12)![0]);
            // A bucket is 1/64 of its power of two wide; fio names it by its middle.
            expect(Math.abs(theirs - ours)).toBeLessThanOrEqual(ours / 64 + 2);
          }
        }
      });
    }),
  );
});

describe("fio's log files", () => {
  it("--write_iops_log/--write_bw_log/--write_lat_log write fio's files, one per job, whose windows add up to the run", () =>
    inTmp(async (dir) => {
      const stem = join(dir, "run");
      const r = await runBench(
        "--json",
        "--rw=randrw",
        "--runtime=800ms",
        "--queues=2",
        "--numjobs=2",
        "--busy-poll=0",
        ...allLogs(stem),
        "--log_avg_msec=100",
      );
      expect(r.code).toBe(0);
      expect(readdirSync(dir).sort()).toEqual(["bw", "clat", "iops", "lat", "slat"].flatMap((k) => [1, 2].map((n) => `run_${k}.${n}.log`)).sort());
      const doc = JSON.parse(r.stdout);
      for (const n of [1, 2]) {
        const job = doc.jobs[n - 1];
        const rows = (k: string) =>
          readFileSync(`${stem}_${k}.${n}.log`, "utf8")
            .trim()
            .split("\n")
            .map((l) => {
              expect(l).toMatch(/^\d+, \d+, [01], 0, 0$/);
              return l.split(", ").map(Number);
            });
        const iops = rows("iops");
        // About one window per 100 ms of the run, for reads and for writes.
        expect(iops.length).toBeGreaterThanOrEqual(2 * 6);
        expect(iops.length).toBeLessThanOrEqual(2 * 10);
        // IOPS times each window's length adds up to the job's I/Os (values are rounded per window).
        for (const d of [0, 1]) {
          let prev = 0;
          let ios = 0;
          for (const [t, v, dir] of iops) {
            if (dir !== d) continue;
            ios += (v * (t - prev)) / 1000;
            prev = t;
          }
          const total = job[d === 0 ? "read" : "write"].total_ios;
          expect(Math.abs(ios - total)).toBeLessThan(total * 0.02 + 50);
        }
        // Mean latency per window within the run's range.
        for (const [, ns, d] of rows("clat")) {
          const lat = job[d === 0 ? "read" : "write"].clat_ns;
          expect(ns).toBeGreaterThanOrEqual(lat.min);
          expect(ns).toBeLessThanOrEqual(lat.max);
        }
        expect(rows("bw").length).toBe(iops.length);
      }
    }));

  it.skipIf(!FIO2GNUPLOT)("fio2gnuplot reads the logs (and draws them where gnuplot is installed)", () =>
    inTmp(async (dir) => {
      const r = await runBench("--rw=randread", "--runtime=600ms", `--write_iops_log=${join(dir, "run")}`, "--log_avg_msec=100");
      expect(r.code).toBe(0);
      const out = join(dir, "plots");
      const t = spawnSync("fio2gnuplot", ["-p", "run_iops.*.log", "-t", "iops", "-d", out, "-k", ...(GNUPLOT ? ["-g"] : [])], { cwd: dir, encoding: "utf8" });
      expect(t.status).toBe(0);
      expect(t.stdout).toContain("run_iops.1.log");
      // Its statistics over the samples are those of the log we wrote.
      const values = readFileSync(join(dir, "run_iops.1.log"), "utf8")
        .trim()
        .split("\n")
        .map((l) => Number(l.split(", ")[1]));
      const global = readFileSync(join(out, "run_iops..global"), "utf8");
      expect(Number(/values_count=(\d+)/.exec(global)![1])).toBe(values.length);
      expect(Number(/avg=([\d.]+)/.exec(global)![1])).toBeCloseTo(values.reduce((a, b) => a + b, 0) / values.length, 0);
      if (GNUPLOT) expect(readdirSync(out).filter((f) => f.endsWith(".png")).length).toBeGreaterThan(0);
    }),
  );

  it.skipIf(!has("fio_generate_plots") || !GNUPLOT)("fio_generate_plots draws the logs", () =>
    inTmp(async (dir) => {
      const stem = join(dir, "run");
      const r = await runBench("--rw=randrw", "--runtime=500ms", ...allLogs(stem), "--log_avg_msec=100");
      expect(r.code).toBe(0);
      const t = spawnSync("fio_generate_plots", ["vhost"], { cwd: dir, encoding: "utf8" });
      expect(t.status).toBe(0);
      // One chart per kind of log, each with the curve of our job's log file.
      for (const k of ["iops", "bw", "clat", "lat", "slat"])
        expect(readFileSync(join(dir, `vhost-${k}.svg`), "utf8")).toMatch(/<g id="gnuplot_plot_1" ><title>Queue depth run\.1<\/title>/);
    }),
  );
});

describe("--plot", () => {
  it("draws IOPS over time per job and the latency percentiles into an SVG file", () =>
    inTmp(async (dir) => {
      const file = join(dir, "run.svg");
      const r = await runBench("--rw=randrw", "--runtime=500ms", "--queues=2", "--numjobs=2", "--busy-poll=0", `--plot=${file}`);
      expect(r.code).toBe(0);
      expect(existsSync(file)).toBe(true);
      const svg = readFileSync(file, "utf8");
      expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
      expect(svg.trim()).toMatch(/<\/svg>$/);
      for (const s of ["IOPS over time", "job 1", "job 2", "Latency by percentile", "99.99%", "read: p50", "write: p50"]) expect(svg).toContain(s);
      // Two jobs' IOPS and the read and write latency curves, with real coordinates.
      const lines = [...svg.matchAll(/<polyline [^>]*points="([^"]+)"/g)].map((m) => m[1].split(" ").map((p) => p.split(",").map(Number)));
      expect(lines).toHaveLength(4);
      for (const pts of lines) for (const [x, y] of pts) expect(Number.isFinite(x) && Number.isFinite(y)).toBe(true);
    }));
});
