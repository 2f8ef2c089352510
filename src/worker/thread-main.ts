// The body of a vhost worker thread: its own data plane instance over the shared memory, the
// worker core serving the vrings attached to it, and a loop that polls, busy-polls for the
// vrings' busyloop timeout, then sleeps on its doorbell (blocking with Atomics.wait when no
// file I/O is in flight, else with Atomics.waitAsync so that completions can run).
import { parentPort, receiveMessageOnPort, workerData } from "node:worker_threads";
import { performance } from "node:perf_hooks";
import { PollTable } from "../eventfd.js";
import { instantiateDataplane } from "../wasm/dataplane.js";
import { WorkerCore } from "./worker-core.js";
import { POLL_MORE, POLL_WAITING } from "./scsi-vrings.js";
import type { WorkerInit, WorkerReply, WorkerRequest } from "./thread-protocol.js";
import { threadCpuMs } from "./thread-cpu.js";

const init = workerData as WorkerInit;
const dp = instantiateDataplane(init.memory, init.area, init.module);
const table = new PollTable(init.pollTable);
const core = new WorkerCore(dp, init.memory.buffer as unknown as SharedArrayBuffer, table, init.doorbell);
const port = init.port;
let running = true;

/** Runs every queued control request; each is acknowledged on the port. */
async function handleControl(): Promise<void> {
  for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
    const { seq, cmd } = m.message as WorkerRequest;
    const reply: WorkerReply = { seq };
    try {
      switch (cmd.op) {
        case "attach": core.attach(cmd.a); break;
        case "detach": await core.detach(cmd.index); break;
        case "files": core.setFiles(cmd.files); break;
        case "kick": core.kick(cmd.index); break;
        case "pause": core.paused = true; break;
        case "resume": core.paused = false; break;
        case "flush": await core.server.idle(); break;
        case "cpu": reply.cpu = threadCpuMs() && { ...threadCpuMs()!, busy: core.busyMs }; break;
        case "stop":
          for (const i of [...core.vrings]) await core.detach(i);
          core.close();
          running = false;
          break;
      }
    } catch (e) {
      reply.error = (e as Error).message;
    }
    port.postMessage(reply);
  }
}

async function main(): Promise<void> {
  let iter = 0;
  let lastBell = -1;
  let lastProgress = -1;
  let idleSince = -1;
  while (running) {
    // Control requests and kicks both ring the doorbell: look at them only when it moved.
    const bell = table.value(init.doorbell);
    if (bell !== lastBell) {
      lastBell = bell;
      await handleControl();
      if (!running) break;
      core.consumeKicks();
    }
    // Let file I/O completions run now and then.
    if ((++iter & 63) === 0 && core.server.ioInflight > 0) await new Promise((res) => setImmediate(res));
    const us = core.busyloopUs;
    // Busy-polling (VHOST_SET_VRING_BUSYLOOP_TIMEOUT): drain with kicks left off for as long as
    // work keeps coming or the window lasts; then one pass with kicks back on before sleeping.
    let r = core.drain(us > 0);
    if (r === POLL_MORE || core.server.progress !== lastProgress) {
      lastProgress = core.server.progress;
      idleSince = -1;
      continue;
    }
    if (us > 0) {
      if (!core.paused) {
        // Idle while busy-polling: look at the clock every 16 rounds; the window starts then.
        if ((iter & 15) !== 0) continue;
        const now = performance.now();
        if (idleSince < 0) idleSince = now;
        if (now - idleSince < us / 1000) continue;
      }
      // The window is over: one pass with kicks back on (a pass without polling already did that).
      r = core.drain(false);
      if (r === POLL_MORE || core.server.progress !== lastProgress) {
        lastProgress = core.server.progress;
        idleSince = -1;
        continue;
      }
    }
    if (table.value(init.doorbell) !== lastBell) continue;
    if (core.server.ioInflight > 0 || r === POLL_WAITING) await table.waitAsync(init.doorbell, lastBell, r === POLL_WAITING ? 1 : 50);
    else table.wait(init.doorbell, lastBell);
    idleSince = -1;
  }
}

main().then(
  () => port.close(),
  (e) => {
    core.signalErrors();
    throw e;
  },
);
parentPort?.on("message", () => {});
