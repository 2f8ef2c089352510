// The body of a vhost worker thread: its own data plane instance over the shared memory, the
// worker core serving the vrings attached to it, and a loop that polls, busy-polls for the
// vrings' busyloop timeout, then sleeps on its doorbell (Atomics.wait): kicks, control requests
// and backstores completing requests all ring it. While it serves a backstore that answers on
// its event loop (NBD), the loop runs between passes and the sleep is Atomics.waitAsync.
import { platform } from "#platform";
import { PollTable } from "../sys/eventfd.js";
import { instantiateDataplane } from "../wasm/dataplane.js";
import { WorkerCore } from "./worker-core.js";
import { POLL_MORE, POLL_WAITING } from "./vring-server.js";
import { ControlPort, type WorkerInit, type WorkerReply } from "./thread-protocol.js";
import { AdaptivePoll } from "./adaptive-poll.js";
import { pinThread } from "../sys/affinity.js";

/**
 * How long a worker whose rings ran dry keeps looking at them (kicks left off) before it sleeps,
 * µs, also with busy-polling off: the guest refills a ring within microseconds of seeing the
 * used entries, and a sleep costs a wake-up, 35-180 µs where the vCPU halts meanwhile. Two
 * workers sharing a CPU served 8-45 % more with it (docs/performance.md).
 */
const REFILL_POLL_US = 8;

const init = await platform.threadData<WorkerInit>();
// Before anything else: a thread that cannot be placed where it was asked dies with the reason.
if (init.cpus) pinThread(init.cpus);
const dp = instantiateDataplane(init.memory, init.area, init.module);
const table = new PollTable(init.pollTable);
const core = new WorkerCore(dp, table, init.doorbell, init.memory.buffer as unknown as SharedArrayBuffer);
const control = new ControlPort(init.port, init.posted, platform);
let running = true;
/** Set by "stop": the loop ends once the vrings are detached. */
let stopping = false;

/**
 * Runs every queued control request; each is acknowledged on the port. A detach is answered
 * when its requests in flight are answered, which takes further passes of the loop; opening
 * backstores (an import) lets the event loop run.
 */
async function handleControl(): Promise<void> {
  for (const { seq, cmd } of await control.take()) {
    const reply: WorkerReply = { seq };
    const ack = () => control.reply(reply);
    try {
      switch (cmd.op) {
        case "attach":
          core.attach(cmd.a);
          break;
        case "backstores":
          await core.setBackstores(cmd.list);
          break;
        case "detach":
          core.detach(cmd.index, ack);
          continue;
        case "kick":
          core.kick(cmd.index);
          break;
        case "pause":
          core.paused = true;
          break;
        case "resume":
          core.paused = false;
          break;
        case "flush":
          break; // passes run to completion: nothing is half done between them
        case "cpu": {
          // Busy time always; CPU time where the platform tells it (NaN in a browser).
          const cpu = platform.threadCpuMs();
          reply.cpu = { user: cpu?.user ?? Number.NaN, system: cpu?.system ?? Number.NaN, busy: core.busyMs };
          break;
        }
        case "stop": {
          stopping = true;
          let left = core.vrings.size;
          const last = () => {
            core.close();
            running = false;
            ack();
          };
          if (left === 0) last();
          for (const i of [...core.vrings]) core.detach(i, () => --left === 0 && last());
          continue;
        }
      }
    } catch (e) {
      reply.error = (e as Error).message;
    }
    ack();
  }
}

async function main(): Promise<void> {
  let iter = 0;
  let lastBell = -1;
  let lastProgress = -1;
  let idleSince = -1;
  /** The polling window of the idle time that started at idleSince, µs. */
  let windowUs = 0;
  const poll = new AdaptivePoll(0);
  while (running) {
    // Control requests and kicks both ring the doorbell: look at them only when it moved.
    const bell = table.value(init.doorbell);
    if (bell !== lastBell) {
      lastBell = bell;
      await handleControl();
      if (!running) break;
      core.consumeKicks();
    }
    ++iter;
    const limit = stopping ? 0 : core.busyloopUs;
    // Busy-polling (VHOST_SET_VRING_BUSYLOOP_TIMEOUT), for the window AdaptivePoll keeps within
    // that limit and at least REFILL_POLL_US: drain with kicks left off for as long as work keeps
    // coming or the window lasts; then one pass with kicks back on before sleeping.
    const us = stopping ? 0 : Math.max(REFILL_POLL_US, Math.min(limit, poll.windowUs));
    let r = core.drain(us > 0);
    if (r === POLL_MORE || core.server.progress !== lastProgress) {
      lastProgress = core.server.progress;
      if (idleSince >= 0) poll.waited((performance.now() - idleSince) * 1000, false, limit);
      idleSince = -1;
      // A backstore answering on this thread's event loop (NBD's sockets) gets it between passes.
      if (core.eventLoop) await platform.yieldToEventLoop();
      continue;
    }
    if (us > 0) {
      if (!core.paused) {
        // Idle while busy-polling: look at the clock every 16 rounds, or with a backstore on the
        // event loop every round, the loop run in between (its replies are what is awaited).
        if (core.eventLoop) await platform.yieldToEventLoop();
        else if ((iter & 15) !== 0) continue;
        const now = performance.now();
        if (idleSince < 0) {
          idleSince = now;
          // Threads waiting for a CPU: no more than the refill look (AdaptivePoll.contended).
          windowUs = poll.contended(now) ? Math.min(us, REFILL_POLL_US) : us;
        }
        if (now - idleSince < windowUs / 1000) continue;
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
    const waitStart = idleSince >= 0 ? idleSince : performance.now();
    // A TMF waiting for aborted requests, or a vring being detached, is looked at every millisecond.
    // With a backstore on the event loop the wait lets it run: its completions ring the doorbell.
    const timeout = r === POLL_WAITING ? 1 : Infinity;
    if (core.eventLoop) await table.waitAsync(init.doorbell, lastBell, timeout);
    else table.wait(init.doorbell, lastBell, timeout);
    poll.waited((performance.now() - waitStart) * 1000, true, limit);
    idleSince = -1;
  }
}

main().then(
  () => control.port.close(),
  (e) => {
    core.signalErrors();
    throw e;
  },
);
