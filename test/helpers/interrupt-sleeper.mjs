// Sleeps once in JobInterrupts (dist/bench/interrupts.js) in a worker thread, as a guest job
// does, with an engine whose arm() answers workerData.ready; reports how long it slept.
import { parentPort, workerData } from "node:worker_threads";
import { performance } from "node:perf_hooks";
import { JobInterrupts } from "../../dist/bench/interrupts.js";

const interrupts = new JobInterrupts(workerData.calls);
const calls = { arm: 0, disarm: 0 };
const engine = {
  arm: () => (calls.arm++, workerData.ready),
  disarm: () => calls.disarm++,
};
parentPort.postMessage("sleeping");
const t0 = performance.now();
interrupts.sleep([engine], workerData.ms);
const ms = performance.now() - t0;
interrupts.close();
parentPort.postMessage({ ms, ...calls });
