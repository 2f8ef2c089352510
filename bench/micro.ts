// Micro-benchmarks (`npm run bench`): each data-plane path beside a reference in the same run
// (plain TypeScript doing the same work, or a plain memory copy), printed with the ratio.
// tinybench measures batches; rates are per request (or per round trip, per byte).
import { Bench } from "tinybench";
import { Worker } from "node:worker_threads";
import { RingTestbed } from "../src/testing/ring-testbed.js";
import { MockSplitQueue } from "../src/testing/mock-queue.js";
import { VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE } from "../src/virtio/ring.js";
import { EventFd } from "../src/sys/eventfd.js";
import { inquiry, read16, write16 } from "../src/guest/scsi-commands.js";
import { TsSplitQueue } from "./reference/ts-split-queue.js";
import { TsInquiryQueue } from "./reference/ts-inquiry.js";
import { ScsiBench } from "../src/testing/scsi-bed.js";
import { runRingBench } from "./ring.js";
import { dataplaneModule } from "../src/wasm/dataplane.js";
import { nativeReference, wasmReference } from "./native-reference.js";
import { xorshift32 } from "./guest-engine.js";
import { measureJobs } from "./run.js";
import { runIops } from "./report.js";
import { parseOptions } from "./options.js";

const TIME = Number(process.env.BENCH_TIME_MS ?? 1000);

interface Row {
  name: string;
  a: string;
  aRate: number;
  b: string;
  bRate: number;
  unit: string;
}
const rows: Row[] = [];

/** Runs two tasks in one tinybench run; `per` is what one call of a task does (requests, bytes). */
async function pair(name: string, unit: string, per: number, a: [string, () => void], b: [string, () => void]): Promise<Row> {
  const bench = new Bench({ time: TIME, warmupTime: 200 });
  bench.add(a[0], a[1]).add(b[0], b[1]);
  await bench.run();
  const [ra, rb] = bench.tasks.map((t) => {
    const r = t.result;
    if (!("throughput" in r)) throw new Error(`${t.name}: ${r.state}`);
    return r.throughput.mean * per;
  });
  const row = { name, a: a[0], aRate: ra, b: b[0], bRate: rb, unit };
  rows.push(row);
  return row;
}

const fmt = (n: number, unit: string) =>
  unit === "B/s" ? `${(n / 2 ** 30).toFixed(2)} GiB/s` : n >= 1e6 ? `${(n / 1e6).toFixed(2)}M ${unit}` : `${(n / 1e3).toFixed(1)}k ${unit}`;

async function ringNull(): Promise<void> {
  const r = await runRingBench(TIME);
  rows.push({ name: "split ring, null request (2-3 descriptor chains)", a: "wasm", aRate: r.wasm, b: "plain TS", bRate: r.ts, unit: "req/s" });
}

async function indirect(): Promise<void> {
  const BATCH = 64;
  const tb = new RingTestbed();
  const build = () => {
    const m = new MockSplitQueue(tb.mem, 128);
    const bufs = tb.mem.alloc(BATCH * 1024, 4096);
    for (let c = 0; c < BATCH; c++) {
      const base = bufs + c * 1024;
      m.writeTable(base + 768, [
        { addr: base, len: 51, flags: VRING_DESC_F_NEXT, next: 1 },
        { addr: base + 64, len: 108, flags: VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, next: 2 },
        { addr: base + 256, len: 512, flags: VRING_DESC_F_WRITE },
      ]);
      m.setDesc(c, { addr: base + 768, len: 48, flags: VRING_DESC_F_INDIRECT });
    }
    for (let s = 0; s < 128; s++) m.ring.setAvailRing(s, s % BATCH);
    return m;
  };
  const wr = build();
  const tr = build();
  const dq = tb.deviceQueue(wr);
  const nullDev = tb.shm.device.alloc(4, 16);
  tb.shm.view.setUint32(nullDev, 108, true);
  const ref = new TsSplitQueue(tb.shm.buffer, tb.memtable.regions, 128, tr.ring.desc, tr.ring.avail, tr.ring.used);
  let wi = 0;
  let ti = 0;
  await pair(
    "indirect chain (1 indirect descriptor, 3-entry table), null request",
    "req/s",
    BATCH,
    [
      "wasm",
      () => {
        wr.ring.availIdx = wi = (wi + BATCH) & 0xffff;
        tb.dp.null_drain(dq.ptr, nullDev, 256);
      },
    ],
    [
      "plain TS",
      () => {
        tr.ring.availIdx = ti = (ti + BATCH) & 0xffff;
        ref.drainNull(108, 256);
      },
    ],
  );
  if (dq.error || ref.error || wr.usedIdx !== wi || tr.usedIdx !== ti) throw new Error("indirect benchmark did not serve every chain");
}

async function inquiryDispatch(): Promise<void> {
  const BATCH = 64;
  const w = new ScsiBench(BATCH, 36, () => inquiry(36), { backstore: "null", size: 1 << 20 });
  // The reference serves a twin ring in the same memory with the same chains.
  const twin = new ScsiBench(BATCH, 36, () => inquiry(36), { backstore: "null", size: 1 << 20 });
  const ident = new Uint8Array(36);
  ident.set([0, 0, 7, 0x12, 31, 0, 0, 2]);
  ident.set(new TextEncoder().encode("LIO-ORG vhost-wasm-null 4.0 "), 8);
  const { ring } = twin;
  const ref = new TsInquiryQueue(twin.tb.shm.buffer, ring.num, ring.ring.desc, ring.ring.avail, ring.ring.used, (g) => twin.tb.mem.hva(g), ident);
  let ti = ring.usedIdx;
  await pair(
    "INQUIRY dispatch (header, LUN, CDB checks, 36-byte data, response)",
    "req/s",
    BATCH,
    ["wasm", w.run],
    [
      "plain TS",
      () => {
        ring.ring.availIdx = ti = (ti + BATCH) & 0xffff;
        ref.drain();
      },
    ],
  );
  w.check();
}

async function copies(): Promise<void> {
  for (const [bs, batch] of [
    [4096, 64],
    [128 << 10, 8],
  ] as const) {
    for (const write of [false, true]) {
      const blocks = bs / 512;
      const b = new ScsiBench(batch, bs, (i) => (write ? write16 : read16)(i * blocks, blocks), { backstore: "ram", size: 64 << 20 }, { write });
      // References: the same bytes moved by Buffer.copy between ordinary buffers (native memcpy)
      // and by TypedArray.prototype.set between views of the shared memory.
      const src = Buffer.alloc(bs * batch, 1);
      const dst = Buffer.alloc(bs * batch);
      const sab = new Uint8Array(b.tb.shm.buffer);
      const from = b.tb.shm.device.alloc(bs * batch, 4096);
      const to = b.tb.mem.hva(b.tb.mem.alloc(bs * batch, 4096));
      const name = `${bs / 1024} KiB RAM-disk ${write ? "WRITE(16)" : "READ(16)"}`;
      await pair(`${name}: data plane vs native memcpy`, "B/s", bs * batch, ["wasm request", b.run], ["memcpy (Buffer.copy)", () => src.copy(dst)]);
      await pair(
        `${name}: data plane vs TypedArray.set on shared memory`,
        "B/s",
        bs * batch,
        ["wasm request", b.run],
        ["TypedArray.set", () => sab.set(sab.subarray(from, from + bs * batch), to)],
      );
      b.check();
    }
  }
}

async function eventfdRoundTrip(): Promise<void> {
  // Ping-pong with a worker thread blocked in read(): EventFd write, the other side wakes and
  // writes back, this side's blocking read returns; against the same exchange done with bare
  // Atomics.notify/Atomics.wait on two words.
  const ping = EventFd.create();
  const pong = EventFd.create();
  const raw = new Int32Array(new SharedArrayBuffer(8));
  const script = new URL("./pingpong.js", import.meta.url);
  const w1 = new Worker(script, { workerData: { mode: "eventfd", ping: ping.handle, pong: pong.handle } });
  const w2 = new Worker(script, { workerData: { mode: "raw", raw: raw.buffer } });
  await Promise.all([w1, w2].map((w) => new Promise((r) => w.once("online", r))));
  let seq = 0;
  await pair(
    "eventfd signal + wake round trip (another thread)",
    "trips/s",
    1,
    [
      "EventFd",
      () => {
        ping.write(1n);
        pong.read();
      },
    ],
    [
      "bare Atomics",
      () => {
        seq++;
        Atomics.store(raw, 0, seq);
        Atomics.notify(raw, 0);
        while (Atomics.load(raw, 1) !== seq) Atomics.wait(raw, 1, seq - 1);
      },
    ],
  );
  await Promise.all([w1.terminate(), w2.terminate()]);
}

async function scaling(): Promise<void> {
  // Device side only: 4 KiB random READ(16) on a RAM LUN, one queue per thread, each thread its
  // own data plane instance over the one shared memory. One thread alone, then two together.
  const BATCH = 32;
  const lba = (i: number) => ((i * 7919) % 16000) * 8;
  const b = new ScsiBench(BATCH, 4096, (i) => read16(lba(i), 8), { backstore: "ram", size: 64 << 20 });
  const queues = [{ ring: b.ring, dq: b.dq }, b.addQueue(BATCH, 4096, (i) => read16(lba(i + 1000), 8))];
  const areas = queues.map(() => b.tb.shm.device.alloc(b.tb.dp.instance_area_size(), 16));
  const module = dataplaneModule();
  const ms = Math.max(500, TIME);
  const run = async (n: number) => {
    const go = new SharedArrayBuffer(4);
    const ws = queues.slice(0, n).map(
      (q, i) =>
        new Worker(new URL("./scale-worker.js", import.meta.url), {
          workerData: { module, memory: b.tb.shm.memory, area: areas[i], vq: q.dq.ptr, dev: b.dev, availIdx: q.ring.ring.avail + 2, batch: BATCH, ms, go },
        }),
    );
    await Promise.all(ws.map((w) => new Promise((r) => w.once("online", r))));
    const done = ws.map((w) => new Promise<{ served: number; seconds: number; error: number }>((r) => w.once("message", r)));
    Atomics.store(new Int32Array(go), 0, 1);
    Atomics.notify(new Int32Array(go), 0);
    const rs = await Promise.all(done);
    await Promise.all(ws.map((w) => w.terminate()));
    if (rs.some((r) => r.error)) throw new Error("queue error in the scaling run");
    return rs.reduce((s, r) => s + r.served / r.seconds, 0);
  };
  const one = await run(1);
  const two = await run(2);
  rows.push({
    name: "multi-queue scaling, device side: 4 KiB RAM-disk reads, threads each with a queue",
    a: "2 queues, 2 workers",
    aRate: two,
    b: "1 queue, 1 worker",
    bRate: one,
    unit: "req/s",
  });
}

async function nativeLoop(): Promise<void> {
  // The device side of a RAM-disk READ (chain walk, virtio-scsi and CDB parsing, copy, response,
  // used ring) beside the C loop of bench/perf-ref, which does that and the guest's side too.
  for (const bs of [4096, 512]) {
    const n = await nativeReference(bs, 32, TIME, [1, 2]);
    if (n.missing) {
      console.log(`C reference at ${bs} B: not run: ${n.missing}`);
      continue;
    }
    const BATCH = 32;
    const blocks = bs / 512;
    const DISK = 64 << 20;
    const b = new ScsiBench(BATCH, bs, (i) => read16(i * blocks, blocks), { backstore: "ram", size: DISK });
    // As the C loop does: every request reads a random block of the 64 MiB disk (the CDB's LBA
    // rewritten before each batch, a few ns a request, counted in).
    let x = 0x9e3779b9;
    const batch = () => {
      for (let c = 0; c < BATCH; c++) {
        x = xorshift32(x);
        b.setLba16(c, (x % (DISK / bs)) * blocks);
      }
      b.run();
    };
    const bench = new Bench({ time: TIME, warmupTime: 200 }).add("wasm", batch);
    await bench.run();
    const r = bench.tasks[0].result;
    if (!("throughput" in r)) throw new Error(`wasm: ${r.state}`);
    b.check();
    const wasm = r.throughput.mean * BATCH;
    const w = await wasmReference(bs, 32, TIME);
    if (w.iops)
      rows.push({
        name: `${bs} B RAM-disk READ of random blocks of 64 MiB: data plane (device side only) vs the C loop compiled to wasm32 (guest and device, one thread)`,
        a: "wasm device side",
        aRate: wasm,
        b: "C->wasm32 loop",
        bRate: w.iops,
        unit: "req/s",
      });
    else console.log(`C->wasm32 reference at ${bs} B: not run: ${w.missing}`);
    for (const c of n.runs) {
      const what = c.mode === 1 ? "C loop, guest and device in one thread" : "C loop, guest and device threads polling";
      rows.push({
        name: `${bs} B RAM-disk READ of random blocks of 64 MiB: data plane (device side only) vs the C loop (mode ${c.mode})`,
        a: "wasm device side",
        aRate: wasm,
        b: what,
        bRate: c.iops,
        unit: "req/s",
      });
    }
  }
}

async function engines(): Promise<void> {
  // The whole path (npm start's job, 4 KiB randread, 64 MiB RAM disk) with each guest load engine.
  const rate = async (engine: string) => {
    return runIops(await measureJobs([parseOptions([`--runtime=${Math.max(500, TIME)}ms`, "--size=64m", `--engine=${engine}`])]));
  };
  const wasm = await rate("wasm");
  const ts = await rate("ts");
  rows.push({
    name: "npm start's job (4 KiB randread, 64 MiB RAM disk): guest load engine",
    a: "--engine wasm",
    aRate: wasm,
    b: "--engine ts",
    bRate: ts,
    unit: "req/s",
  });
}

await ringNull();
await indirect();
await inquiryDispatch();
await copies();
await eventfdRoundTrip();
await scaling();
await nativeLoop();
await engines();

console.log(`micro-benchmarks (${TIME} ms per task, ${process.version}); ratio = first / second, measured in the same run\n`);
for (const r of rows) {
  console.log(r.name);
  console.log(`  ${r.a.padEnd(22)} ${fmt(r.aRate, r.unit).padStart(16)}`);
  console.log(`  ${r.b.padEnd(22)} ${fmt(r.bRate, r.unit).padStart(16)}`);
  console.log(`  ratio ${(r.aRate / r.bRate).toFixed(2)}x`);
}
