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
  let spins = 0;
  while (running) {
    await handleControl();
    if (!running) break;
    const seen = table.value(init.doorbell);
    let r = core.poll();
    if (r === POLL_MORE) {
      // Let file I/O completions in now and then.
      if (++spins % 64 === 0 && core.server.ioInflight > 0) await new Promise((res) => setImmediate(res));
      continue;
    }
    const us = core.busyloopUs;
    if (us > 0 && !core.paused) {
      const progress = core.server.progress;
      const end = performance.now() + us / 1000;
      while (performance.now() < end && table.value(init.doorbell) === seen && core.server.progress === progress) r = core.poll();
      if (core.server.progress !== progress || r === POLL_MORE) continue;
    }
    if (core.server.ioInflight > 0 || r === POLL_WAITING) await table.waitAsync(init.doorbell, seen, r === POLL_WAITING ? 1 : 50);
    else table.wait(init.doorbell, seen);
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
