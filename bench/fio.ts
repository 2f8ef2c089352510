#!/usr/bin/env node
// The main job (`npm start`): a fio-like benchmark of the whole vhost-scsi path on a RAM-disk
// LUN by default. The device side (QEMU-side device model, /dev/vhost-scsi, vhost worker
// threads) runs as a user would set it up; the guest driver probes it, then hands its request
// queues to fio's jobs, which guest threads (the guest's vCPUs) drive polled, in a closed loop.
import { Worker } from "node:worker_threads";
import { performance } from "node:perf_hooks";
import { createTestbed } from "../src/testbed.js";
import type { LunConfig } from "../src/target/tpg.js";
import { commandRetryingUA } from "../src/guest/scan.js";
import { testUnitReady } from "../src/guest/scsi-commands.js";
import { polledSlotSize } from "../src/guest/polled-queue.js";
import { helpText, OptionError, PROGRAM, parseOptions, type FioOptions } from "./options.js";
import { fmtBw, fmtIops, jobsIops, jsonReport, textReport, type DeviceInfo } from "./report.js";
import { fittingLabel, fittingOptions } from "./fitting-reference.js";
import { backstoreReference } from "./backstore-reference.js";
import { bracket, nativeReference } from "./native-reference.js";
import { writeFioLogs } from "./fio-logs.js";
import { plotSvg } from "./plot.js";
import { realpathSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { JobResult } from "./job-result.js";
import type { GuestThreadInit, JobInit } from "./guest-engine.js";
import { engineAreaBytes } from "./wasm-engine.js";

const nextPow2 = (n: number) => 2 ** Math.ceil(Math.log2(n));

export async function runFio(
  o: FioOptions,
  progress: (line: string) => void = () => {},
): Promise<{ jobs: JobResult[]; text: string; json: (plus: boolean) => unknown }> {
  // How long a yardstick runs: right before and right after the run, half the time each.
  const referenceMs = Math.min(2000, Math.max(500, o.runtimeMs));
  // Threads beyond the cores: the largest configuration that fits, before and after.
  const fitting = fittingOptions(o, referenceMs / 2);
  const fittingBefore = fitting && (await runJobs(fitting, () => {}, 0));
  const { jobs, dev } = await runJobs(o, progress, referenceMs);
  if (fitting && fittingBefore) {
    const after = await runJobs(fitting, () => {}, 0);
    const iopsEach: [number, number] = [jobsIops(fittingBefore.jobs), jobsIops(after.jobs)];
    dev.fitting = { options: fittingLabel(fitting), iops: (iopsEach[0] + iopsEach[1]) / 2, iopsEach };
  }
  return { jobs, text: textReport(o, jobs, dev), json: (plus) => jsonReport(o, jobs, dev, plus) };
}

/**
 * Runs o's jobs on a testbed of their own; with referenceMs, the C loop (a RAM disk) or the
 * backstore's own storage is measured too, referenceMs in all.
 */
async function runJobs(o: FioOptions, progress: (line: string) => void, referenceMs: number): Promise<{ jobs: JobResult[]; dev: DeviceInfo }> {
  // Each job's iodepth is spread over its queues; each in-flight I/O holds three descriptors.
  const jobQueues = Array.from({ length: o.numjobs }, (_, j) => Array.from({ length: o.queues }, (_, q) => q).filter((q) => q % o.numjobs === j));
  const depthOf = (j: number, k: number) => Math.max(1, Math.floor(o.iodepth / jobQueues[j].length) + (k < o.iodepth % jobQueues[j].length ? 1 : 0));
  const maxDepth = Math.max(...jobQueues.flatMap((qs, j) => qs.map((_, k) => depthOf(j, k))));
  const queueSize = Math.min(32768, Math.max(128, nextPow2(3 * maxDepth)));
  const bufferBytes = jobQueues.reduce((s, qs, j) => s + qs.reduce((t, _, k) => t + depthOf(j, k) * polledSlotSize(o.bs), 0), 0);
  const regionBytes = o.verify ? Math.floor(o.size / o.numjobs / o.bs) * o.bs : o.size;
  // The WebAssembly engine's state is the guest program's memory: guest RAM, one area per job.
  const engineBytes = jobQueues.map((qs, j) =>
    o.engine === "wasm"
      ? engineAreaBytes(
          qs.map((_, k) => depthOf(j, k)),
          Math.floor(regionBytes / o.bs),
          o.verify,
        )
      : 0,
  );
  const lun = {
    ...o.backstore,
    size: o.size,
    blockSize: o.blockSize,
    ...(o.ioThreads !== undefined ? { ioThreads: o.ioThreads } : {}),
  } as LunConfig;
  const bed = await createTestbed({
    luns: [lun],
    queues: o.queues,
    workers: o.workers,
    queueSize,
    process: { workerCpus: o.workerCpus && ((id) => o.workerCpus![id]) },
    guestMemory: Math.ceil((bufferBytes + engineBytes.reduce((a, b) => a + b + 4096, 0) + 16 * queueSize * (o.queues + 2) * 2 + (8 << 20)) / 65536) * 65536,
  });
  try {
    await commandRetryingUA(bed.driver, { lun: 0, cdb: testUnitReady() });
    const vhost = bed.device.vhost;
    for (let q = 0; q < o.queues; q++) await vhost.SET_VRING_BUSYLOOP_TIMEOUT({ index: 2 + q, num: o.busyPollUs });
    const stats = new SharedArrayBuffer(o.numjobs * 4 * 8);
    const control = new SharedArrayBuffer(8);
    const inits = jobQueues.map(
      (qs, j): JobInit => ({
        index: j,
        buffer: bed.shm.buffer,
        memory: bed.shm.memory,
        engineArea: engineBytes[j] ? bed.mem.hva(bed.mem.alloc(engineBytes[j], 4096)) : 0,
        queues: qs.map((q, k) => {
          const r = bed.driver.releaseQueue(q);
          const depth = depthOf(j, k);
          const notifiers = bed.device.handOverNotifiers(2 + q);
          const bufferGpa = bed.mem.alloc(depth * polledSlotSize(o.bs), 4096);
          return {
            ring: {
              num: r.num,
              desc: bed.mem.hva(r.desc),
              avail: bed.mem.hva(r.avail),
              used: bed.mem.hva(r.used),
              availIdx: r.availIdx,
              usedIdx: r.usedIdx,
              eventIdx: r.eventIdx,
              kick: notifiers.kick,
              call: notifiers.call,
            },
            depth,
            bufferGpa,
            bufferHva: bed.mem.hva(bufferGpa),
          };
        }),
        opts: o,
        target: bed.tpg.tag,
        regionStart: o.verify ? j * regionBytes : 0,
        regionBytes,
        stats,
        control,
      }),
    );
    // The guest's threads (its vCPUs): job j runs on thread j % --guest-threads.
    const jobs = Array.from(
      { length: o.guestThreads },
      (_, t) =>
        new Worker(new URL("./job.js", import.meta.url), {
          workerData: { jobs: inits.filter((_, j) => j % o.guestThreads === t), cpus: o.guestCpus?.[t] } satisfies GuestThreadInit,
        }),
    );
    const results = jobs.map(
      (w) =>
        new Promise<JobResult[]>((resolve, reject) => {
          w.on("message", (m) => {
            if (!("ready" in m)) resolve(m as JobResult[]);
          });
          w.once("error", reject);
          w.once("exit", (code) => reject(new Error(`job thread exited with code ${code}`)));
        }),
    );
    await Promise.all(jobs.map((w) => new Promise<void>((r) => w.on("message", (m) => "ready" in m && r()))));
    // A RAM disk run is compared with the C request loop and C memcpy at its block size and region size.
    const native = () => nativeReference(o.bs, o.iodepth, referenceMs / 2, [2], o.size);
    const nativeBefore = referenceMs && o.backstore.backstore === "ram" ? native() : undefined;
    const cpu0 = await vhost.workerCpu();
    const ctl = new Int32Array(control);
    Atomics.store(ctl, 0, 1);
    Atomics.notify(ctl, 0);
    const t0 = performance.now();
    const live = new Float64Array(stats);
    let last = { t: t0, r: 0, rb: 0, w: 0, wb: 0 };
    const timer = setInterval(() => {
      const now = performance.now();
      let r = 0,
        rb = 0,
        w = 0,
        wb = 0;
      for (let j = 0; j < o.numjobs; j++) {
        r += live[4 * j];
        rb += live[4 * j + 1];
        w += live[4 * j + 2];
        wb += live[4 * j + 3];
      }
      const dt = (now - last.t) / 1000;
      const eta = o.runtimeMs > 0 ? Math.max(0, Math.ceil((o.runtimeMs - (now - t0)) / 1000)) : "?";
      progress(
        `Jobs: ${o.numjobs} (f=${o.numjobs}): [r=${fmtBw((rb - last.rb) / dt)},w=${fmtBw((wb - last.wb) / dt)}][r=${fmtIops((r - last.r) / dt)},w=${fmtIops((w - last.w) / dt)} IOPS][eta ${eta}s]`,
      );
      last = { t: now, r, rb, w, wb };
    }, 500);
    let jobResults: JobResult[];
    try {
      jobResults = (await Promise.all(results)).flat().sort((a, b) => a.index - b.index);
    } finally {
      clearInterval(timer);
    }
    const cpu1 = await vhost.workerCpu();
    for (const w of jobs) await w.terminate();
    const dev: DeviceInfo = {
      workers: cpu1.map((c) => {
        const b = cpu0.find((x) => x.id === c.id) ?? { user: 0, system: 0, busy: 0 };
        return { id: c.id, user: c.user - b.user, system: c.system - b.system, busy: c.busy - b.busy };
      }),
      guestCpu: jobResults.reduce((s, j) => ({ user: s.user + (j.cpu?.user ?? 0), system: s.system + (j.cpu?.system ?? 0) }), { user: 0, system: 0 }),
      kicks: jobResults.reduce((s, j) => s + j.kicks, 0),
      native: nativeBefore && bracket(nativeBefore, native()),
      // A file or NBD backstore is compared with the same I/O done directly on its storage, now.
      references: referenceMs ? backstoreReference(o, referenceMs) : [],
    };
    return { jobs: jobResults, dev };
  } finally {
    await bed.close();
  }
}

async function main(): Promise<void> {
  let o: FioOptions;
  try {
    o = parseOptions(process.argv.slice(2));
  } catch (e) {
    if (e instanceof OptionError) {
      process.stderr.write(`${PROGRAM}: ${e.message}\n(see --help)\n`);
      process.exit(1);
    }
    throw e;
  }
  if (o.help) {
    process.stdout.write(helpText());
    return;
  }
  const tty = process.stderr.isTTY && o.formats.every((f) => f === "normal");
  const r = await runFio(o, tty ? (line) => process.stderr.write(`\r${line}\x1b[K`) : undefined);
  if (tty) process.stderr.write("\r\x1b[K");
  for (const f of o.formats) process.stdout.write(f === "normal" ? `${r.text}\n` : `${JSON.stringify(r.json(f === "json+"), null, 2)}\n`);
  writeFioLogs(o, r.jobs);
  if (o.plot) writeFileSync(o.plot, plotSvg(o, r.jobs));
  process.exit(r.jobs.some((j) => j.verifyMismatches > 0) ? 2 : 0);
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
  main().catch((e) => {
    process.stderr.write(`${PROGRAM}: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
