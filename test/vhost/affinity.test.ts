import { describe, expect, it } from "vitest";
import { readdirSync } from "node:fs";
import { Worker } from "node:worker_threads";
import { allowedCpus, canPinThreads, parseCpuList, pinThread, threadCpus } from "../../src/sys/affinity.js";
import { createTestbed } from "../../src/testbed.js";
import { SharedMemory } from "../../src/memory/shared-memory.js";
import { VhostProcess } from "../../src/vhost/process.js";
import { VhostError } from "../../src/sys/errors.js";
import { read16 } from "../../src/guest/scsi-commands.js";
import { clearUnitAttentions, expectGood } from "../helpers/scsi.js";
import { until } from "../helpers/backstores.js";

const cpus = allowedCpus();
const SEVERAL = cpus !== undefined && cpus.length >= 2 && canPinThreads();
if (!SEVERAL) console.warn("skipped: placing threads on CPUs needs Linux, taskset (util-linux) and at least 2 CPUs this process may use");

/** The CPUs of every thread of this process, by thread id. */
function threadPlacement(): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const tid of readdirSync("/proc/self/task")) {
    const cpus = threadCpus(tid); // undefined: the thread ended meanwhile
    if (cpus) out.set(tid, cpus);
  }
  return out;
}

describe("CPU lists", () => {
  it("reads taskset's and fio's notation", () => {
    expect(parseCpuList("0")).toEqual([0]);
    expect(parseCpuList("0-3,6")).toEqual([0, 1, 2, 3, 6]);
    expect(parseCpuList(" 5 , 1-2,2")).toEqual([1, 2, 5]);
    for (const bad of ["", "x", "3-1", "1,,2", "-1", "0-5000"]) expect(() => parseCpuList(bad), bad).toThrow(RangeError);
  });
});

describe.runIf(SEVERAL)("threads placed on CPUs", () => {
  const last = cpus![cpus!.length - 1];

  it("pins the calling thread, in any worker thread", async () => {
    // The built module (dist/), as the library's worker threads load it.
    const w = new Worker(
      `const { workerData, parentPort } = require("node:worker_threads");
       import(workerData.mod).then((a) => { a.pinThread([workerData.cpu]); parentPort.postMessage(a.threadCpus()); });`,
      { eval: true, workerData: { mod: new URL("../../dist/src/sys/affinity.js", import.meta.url).href, cpu: last } },
    );
    const seen = await new Promise((resolve, reject) => w.once("message", resolve).once("error", reject));
    await w.terminate();
    expect(seen).toEqual([last]);
  });

  it("refuses CPUs the process may not use, and an empty list", () => {
    expect(() => pinThread([4095])).toThrow(/not one this process may run on/);
    expect(() => pinThread([])).toThrow(/at least one CPU/);
  });

  it("runs each vhost worker thread on the CPUs VhostProcessOptions.workerCpus gives it, and serves I/O there", async () => {
    const before = threadPlacement();
    const bed = await createTestbed({ queues: 2, workers: 2, process: { workerCpus: () => [last] } });
    try {
      await clearUnitAttentions(bed);
      // Both worker threads, and no thread that was there before, now run on `last` alone.
      await until(() => [...threadPlacement()].filter(([tid, l]) => !before.has(tid) && l.length === 1 && l[0] === last).length >= 2);
      for (let lba = 0; lba < 8; lba++) expectGood(await bed.driver.command({ lun: 0, cdb: read16(lba, 1), dataInLength: 512 }));
    } finally {
      await bed.close();
    }
  });

  it("answers EINVAL for a CPU the process may not use, and for workers that are not threads", async () => {
    const shm = SharedMemory.create({ deviceBytes: 8 << 20, guestBytes: 8 << 20 });
    const proc = new VhostProcess(shm, { workerCpus: () => [4095] });
    const fd = proc.open("/dev/vhost-scsi");
    const e = await proc
      .device(fd)
      .SET_OWNER()
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(VhostError);
    expect((e as VhostError).code).toBe("EINVAL");
    expect(() => new VhostProcess(shm, { workerThreads: false, workerCpus: () => [last] })).toThrow(VhostError);
  });
});
