// An I/O thread: opens its backstore from the module the backstore named (openInThread, which
// may open it asynchronously: an OPFS file's access handle) and serves the LUN's submission
// queue, with synchronous I/O straight on views of the guest buffers. It spins briefly when the
// queue runs empty (a request arriving then is taken within a microsecond), then sleeps on the
// queue's wake word until a producer notifies. Told to stop, it closes its backstore and says
// "closed" to the thread that started it.
import { platform } from "#platform";
import { RingPort, type TakenRequest } from "./ring.js";
import { BATCH, IO_CPU_AT, IO_CPU_SLOT, runBatch, type IoThreadInit } from "./service.js";
import type { QueuedBackstore } from "./backstore.js";
import { PollTable } from "../sys/eventfd.js";

/** How long an idle I/O thread keeps looking before it sleeps, ms. */
const SPIN_MS = 0.05;

const d = await platform.threadData<IoThreadInit>();
const control = new Int32Array(d.control);
const port = new RingPort(d.memory.buffer as unknown as SharedArrayBuffer, new PollTable(d.pollTable));
const mod = (await import(d.module)) as { openInThread(init: unknown): QueuedBackstore | Promise<QueuedBackstore> };
const backstore = await mod.openInThread(d.init);
const finish = (ctx: number, result: number) => port.complete(ctx, result);
const gate = port.gate(d.sq);
const cpu = new Float64Array(d.control, IO_CPU_AT + IO_CPU_SLOT * d.index, 2);
const answeredAt = (IO_CPU_AT + IO_CPU_SLOT * d.index + 16) / 4;
/** Answers the CPU-time requests made since this thread last answered: its time, then the count. */
function answerCpu(): void {
  const asked = Atomics.load(control, 2);
  if (asked === Atomics.load(control, answeredAt)) return;
  const t = platform.threadCpuMs();
  cpu[0] = t?.user ?? Number.NaN;
  cpu[1] = t?.system ?? Number.NaN;
  Atomics.store(control, answeredAt, asked);
}

let idleSince = -1;
while (Atomics.load(control, 0) === 0) {
  answerCpu();
  const batch: TakenRequest[] = [];
  for (let ctx = port.take(d.sq); ctx !== 0; ctx = batch.length < BATCH ? port.take(d.sq) : 0) batch.push(port.request(ctx));
  if (batch.length) {
    runBatch(backstore, batch, finish, gate);
    port.ringDoorbells();
    idleSince = -1;
    continue;
  }
  const now = performance.now();
  if (idleSince < 0) idleSince = now;
  if (now - idleSince < SPIN_MS) continue;
  port.sleep(d.sq, 100);
  idleSince = -1;
}
await backstore.close();
platform.postToParent("closed");
