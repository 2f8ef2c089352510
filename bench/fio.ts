#!/usr/bin/env node
// The main job (`npm start`): a fio-like benchmark of the whole vhost-scsi path on a RAM-disk
// LUN by default. The device side (QEMU-side device model, /dev/vhost-scsi, vhost worker
// threads) runs as a user would set it up; the guest driver probes it, then hands its request
// queues to fio's jobs, which guest threads (the guest's vCPUs) drive polled, in a closed loop.
// A command line or job file may hold several jobs: those between stonewalls run at the same
// time on one device (a run), the runs one after another.
import { accessSync, closeSync, constants, openSync, readFileSync, realpathSync, writeSync } from "node:fs";
import { basename, dirname, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type CommandLine, helpText, OptionError, PROGRAM, parseCommandLine, type FioOptions, type ProgramOptions } from "./options.js";
import { runIops, jsonReport, textReport, referenceLines, type RunReport } from "./report.js";
import { fittingLabel, fittingOptions } from "./fitting-reference.js";
import { backstoreReference } from "./backstore-reference.js";
import { bracket, nativeReference, type NativeReference } from "./native-reference.js";
import { writeFioLogs } from "./fio-logs.js";
import { plotSvg } from "./plot.js";
import { lunFor, regionOf, RunError } from "./region.js";
import { lunOrFile } from "./file-lun.js";
import { reportOf, runJobs, StopSignal } from "./run.js";
import { yardsticksStopped } from "./yardstick-tool.js";
import { VERSION } from "./version.generated.js";

/** How this program was invoked, for --help: `npm start --`, the bin's name, or `node PATH`. */
export function invokedAs(argv1: string | undefined = process.argv[1], env: NodeJS.ProcessEnv = process.env): string {
  if (env.npm_lifecycle_event === "start") return "npm start --";
  if (!argv1) return PROGRAM;
  const name = basename(argv1);
  if (!name.endsWith(".js")) return name;
  const rel = relative(process.cwd(), argv1);
  return `node ${rel.startsWith("..") ? argv1 : rel}`;
}

/** How long a yardstick runs: right before and right after the run, half the time each. */
const referenceMs = (o: FioOptions) => Math.min(2000, Math.max(500, o.runtimeMs || 1000));

/**
 * One run and its yardsticks: the C loop (a RAM disk) and the configuration that fits the
 * cores run right before and right after it; the backstore's own storage after it (its LUN
 * has let go of it then). The run's own report is printed (`print`) before any yardstick is
 * done; a run with errors is compared with nothing. The yardsticks compare a run of one job.
 * Undefined when stopped before the run began.
 */
export async function runOne(
  jobs: FioOptions[],
  program: ProgramOptions,
  stop: StopSignal,
  print: (report: RunReport, yardsticks: boolean) => void,
  progress: (line: string) => void = () => {},
): Promise<RunReport | undefined> {
  const o = jobs[0];
  const refs = jobs.length === 1 ? program.references : new Set<never>();
  const ms = referenceMs(o);
  const cNeeded = refs.has("c") && o.backstore.backstore === "ram";
  const fitting = refs.has("fitting") ? fittingOptions(o, ms / 2) : undefined;
  // The C loop's RAM disk is the run's region, so that both pay the same cache and TLB misses.
  const nativeRun = () => nativeReference(o.bs, o.iodepth, ms / 2, [2], regionOf(o, (lunFor(jobs).lun as { size: number }).size).bytes);
  const nativeBefore: NativeReference | undefined = cNeeded && !stop.stopped ? await nativeRun() : undefined;
  const fittingBefore = fitting && !stop.stopped ? await runJobs([fitting], { plot: false, stop, progress: () => {}, lun: lunOrFile }) : undefined;
  if (stop.stopped) return undefined;
  const outcome = await runJobs(jobs, { plot: program.plot !== undefined, stop, progress, lun: lunOrFile });
  const report = reportOf(jobs, outcome);
  if (stop.stopped) report.notes.push("interrupted (Ctrl-C): the figures are of the part that ran");
  const errors = outcome.jobs.some((j) => j.errors > 0);
  const yardsticks =
    !errors && !stop.stopped && (cNeeded || fitting !== undefined || (refs.size > 0 && o.backstore.backstore !== "ram" && o.backstore.backstore !== "null"));
  if (jobs.length > 1 && program.references.size) report.notes.push("yardsticks: not run: they compare a run of one job, this one has several at once");
  if (errors && program.references.size) report.notes.push("yardsticks: not run: the run had errors, and its figures are not the device's");
  print(report, yardsticks);
  if (!yardsticks) return report;
  const dev = outcome.dev;
  dev.references = await backstoreReference(o, outcome.regions[0], refs, ms);
  if (nativeBefore) dev.native = stop.stopped ? nativeBefore : bracket(nativeBefore, await nativeRun());
  if (fitting && fittingBefore && !stop.stopped) {
    const after = await runJobs([fitting], { plot: false, stop, progress: () => {}, lun: lunOrFile });
    const iopsEach: [number, number] = [runIops(fittingBefore.jobs), runIops(after.jobs)];
    dev.fitting = { options: fittingLabel(fitting), iops: (iopsEach[0] + iopsEach[1]) / 2, iopsEach };
  }
  return report;
}

/** Checks, before any I/O, that every file the run will write can be written (fio's --output, logs, --plot). */
function checkOutputs(program: ProgramOptions, runs: FioOptions[][]): void {
  const stems = runs.flat().flatMap((o) => [o.iopsLog, o.bwLog, o.latLog].filter((s): s is string => !!s));
  for (const [what, path] of [...stems.map((s) => ["log", s] as const), ["--plot", program.plot] as const, ["--output", program.output] as const]) {
    if (!path) continue;
    const dir = dirname(resolve(path));
    try {
      accessSync(dir, constants.W_OK);
    } catch (e) {
      throw new OptionError(`${what} ${path}: cannot write in ${dir} (${(e as NodeJS.ErrnoException).code})`);
    }
  }
}

/** Runs a command line's runs in order and writes their reports; the exit code. */
async function main(argv: string[]): Promise<number> {
  let cl: CommandLine;
  try {
    cl = parseCommandLine(argv, { readText: (p) => readFileSync(p === "-" ? 0 : p, "utf8"), env: process.env });
    checkOutputs(cl.program, cl.runs);
  } catch (e) {
    if (e instanceof OptionError) {
      process.stderr.write(`${PROGRAM}: ${e.message}\n(see --help)\n`);
      return 1;
    }
    throw e;
  }
  const { program, runs } = cl;
  if (program.help) {
    process.stdout.write(helpText(invokedAs()));
    return 0;
  }
  if (program.version) {
    process.stdout.write(`${PROGRAM} ${VERSION}\n`);
    return 0;
  }
  const out = program.output ? openSync(program.output, "w") : 1;
  const write = (text: string) => writeSync(out, text);
  const stop = new StopSignal();
  stop.on(() => yardsticksStopped.abort());
  // Ctrl-C: the jobs stop and the partial report is printed, as fio does; a second one ends at once.
  process.on("SIGINT", () => {
    if (stop.stopped) process.exit(130);
    process.stderr.write(`\n${PROGRAM}: interrupted; stopping the jobs (Ctrl-C again to quit at once)\n`);
    stop.stop();
  });
  const text = program.formats.includes("normal");
  const tty = process.stderr.isTTY && (out !== 1 || program.formats.every((f) => f === "normal"));
  const progress = tty ? (line: string) => process.stderr.write(`\r${line}\x1b[K`) : undefined;
  const reports: RunReport[] = [];
  let firstJob = 1;
  try {
    for (const [n, jobs] of runs.entries()) {
      if (stop.stopped) break;
      let r: RunReport | undefined;
      try {
        r = await runOne(
          jobs,
          program,
          stop,
          (rep, more) => {
            if (tty) process.stderr.write("\r\x1b[K");
            if (text) write(`${n > 0 ? "\n" : ""}${textReport(rep)}\n`);
            if (tty && more) process.stderr.write("yardsticks: running (same storage, same run) ...");
          },
          progress,
        );
      } catch (e) {
        if (e instanceof RunError) {
          process.stderr.write(`${PROGRAM}: ${e.message}\n`);
          return 1;
        }
        throw e;
      }
      if (tty) process.stderr.write("\r\x1b[K");
      if (!r) break;
      const lines = referenceLines(r);
      if (text && lines.length) write(`${lines.join("\n")}\n`);
      writeFioLogs(r, firstJob);
      firstJob += r.results.length;
      reports.push(r);
    }
    for (const f of program.formats) if (f !== "normal") write(`${JSON.stringify(jsonReport(reports, f === "json+"), null, 2)}\n`);
    if (program.plot && reports.length) {
      const fd = openSync(program.plot, "w");
      writeSync(fd, plotSvg(reports));
      closeSync(fd);
    }
  } finally {
    if (out !== 1) closeSync(out);
  }
  const all = reports.flatMap((r) => r.results);
  if (stop.stopped) return 130;
  if (all.some((j) => j.verifyMismatches > 0)) return 2;
  return all.some((j) => j.errors > 0) ? 1 : 0;
}

/** Whether this module is the program being run (directly, or through the package's bin symlink). */
function isMain(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`${PROGRAM}: ${(e as Error).message}\n`);
      process.exit(1);
    },
  );
}
