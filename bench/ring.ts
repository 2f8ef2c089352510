// Ring micro-benchmark (`npm run bench:ring`): null requests through the split ring, the WASM
// data plane (vq_drain + null device, one call per batch) side by side with the plain-TS
// reference loop, over the same shared memory and the same kind of chains.
//
// The guest side is kept to a minimum so that the device side is what is measured: the
// descriptor tables and avail rings are written once (64 fixed chains, alternately 2 and 3
// descriptors: a 51-byte request header, a 108-byte reply buffer, a 512-byte data buffer), and
// each batch only publishes avail->idx += 64. The device does all its per-request work.
import { Bench } from "tinybench";
import { RingTestbed } from "../src/testing/ring-testbed.js";
import { MockSplitQueue } from "../src/testing/mock-queue.js";
import { VRING_DESC_F_NEXT, VRING_DESC_F_WRITE } from "../src/virtio/ring.js";
import { TsSplitQueue } from "./reference/ts-split-queue.js";

const NUM = 256;
const BATCH = 64;
const REPLY = 108;

function buildRing(tb: RingTestbed): MockSplitQueue {
  const mock = new MockSplitQueue(tb.mem, NUM);
  const bufs = tb.mem.alloc(BATCH * 1024, 4096);
  let d = 0;
  const heads: number[] = [];
  for (let c = 0; c < BATCH; c++) {
    const base = bufs + c * 1024;
    const three = c % 2 === 1;
    heads.push(d);
    mock.setDesc(d, { addr: base, len: 51, flags: VRING_DESC_F_NEXT, next: d + 1 });
    mock.setDesc(d + 1, { addr: base + 64, len: REPLY, flags: VRING_DESC_F_WRITE | (three ? VRING_DESC_F_NEXT : 0), next: d + 2 });
    if (three) mock.setDesc(d + 2, { addr: base + 256, len: 512, flags: VRING_DESC_F_WRITE });
    d += three ? 3 : 2;
  }
  for (let s = 0; s < NUM; s++) mock.ring.setAvailRing(s, heads[s % BATCH]);
  return mock;
}

export async function runRingBench(timeMs = 1500): Promise<{ wasm: number; ts: number; ratio: number }> {
  const tb = new RingTestbed();
  const wasmRing = buildRing(tb);
  const tsRing = buildRing(tb);
  const dq = tb.deviceQueue(wasmRing);
  const ref = new TsSplitQueue(tb.shm.buffer, tb.memtable.regions, NUM, tsRing.ring.desc, tsRing.ring.avail, tsRing.ring.used);
  const nullDev = tb.shm.device.alloc(4, 16);
  tb.shm.view.setUint32(nullDev, REPLY, true);
  let wasmIdx = 0;
  let tsIdx = 0;
  const wasmBatch = () => {
    wasmRing.ring.availIdx = wasmIdx = (wasmIdx + BATCH) & 0xffff;
    tb.dp.null_drain(dq.ptr, nullDev, 256);
  };
  const tsBatch = () => {
    tsRing.ring.availIdx = tsIdx = (tsIdx + BATCH) & 0xffff;
    ref.drainNull(REPLY, 256);
  };

  // Both paths must produce the same used ring before their speed means anything.
  wasmBatch();
  tsBatch();
  for (let s = 0; s < BATCH; s++) {
    const a = wasmRing.used(s);
    const b = tsRing.used(s);
    if (a.id !== b.id || a.len !== b.len) throw new Error(`used[${s}] differs: wasm ${JSON.stringify(a)} ts ${JSON.stringify(b)}`);
  }

  const bench = new Bench({ time: timeMs, warmupTime: 300 });
  bench.add("wasm: vq_drain + null device", wasmBatch).add("plain TS: same loop", tsBatch);
  await bench.run();
  if (dq.error || ref.error) throw new Error(`queue error: ${dq.error?.name ?? ref.error}`);
  if (wasmRing.usedIdx !== wasmIdx || tsRing.usedIdx !== tsIdx) throw new Error("a batch was not fully served");
  const [w, t] = bench.tasks.map((task) => {
    const r = task.result;
    if (!("throughput" in r)) throw new Error(`${task.name}: ${r.state}`);
    return r.throughput.mean * BATCH;
  });
  return { wasm: w, ts: t, ratio: w / t };
}

const isMain = process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/.*\/dist\//, "/dist/"));
if (isMain) {
  const r = await runRingBench();
  const fmt = (n: number) => `${(n / 1e6).toFixed(2)}M chains/s`;
  console.log(`split ring, null requests (2-3 descriptor chains, ${REPLY}-byte reply, batches of ${BATCH}):`);
  console.log(`  wasm      ${fmt(r.wasm)}`);
  console.log(`  plain TS  ${fmt(r.ts)}`);
  console.log(`  ratio     wasm/ts = ${r.ratio.toFixed(2)}x`);
}
