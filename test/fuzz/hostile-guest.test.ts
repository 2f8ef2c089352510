// Hostile-guest property tests against the real data plane (VIRTIO 1.2 2.7, 5.6; the kernel's
// vhost_get_vq_desc and vhost-scsi reactions). A mock driver writes whatever fast-check makes:
// descriptor tables with loops, wild next links, zero and huge lengths, addresses at and past
// every region edge and near 2^64, nested and misshapen indirect tables, writable-before-readable
// chains, avail->idx jumps and rewinds; virtio-scsi requests with random LUN fields, truncated
// headers, short responses and random CDBs for every opcode; control and event queue traffic.
// After every case: nothing trapped, every drain returned, no byte changed outside what the guest
// made device-writable and the device's own state (canaries around device memory and in the
// gaps between guest regions), every guest byte the device wrote on a page the dirty log marked, well-formed requests got a response from the specified set with
// well-formed sense, and the same data plane instance still serves a good request.
//
// FUZZ_SECONDS (default 12 per property) sizes the run; FUZZ_SEED replays one; FUZZ_REPORT=path
// appends the campaign's figures as JSON.
import { afterAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { appendFileSync } from "node:fs";
import { HostileBed, RAM_A, RAM_B, REGION, chainOf, type Desc, type FuzzQueue } from "../helpers/hostile-bed.js";
import { VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE } from "../../src/virtio/ring.js";
import { decodeSense, ASC_NAMES } from "../../src/guest/sense.js";
import { inquiry } from "../../src/guest/scsi-commands.js";
import { VIRTIO_SCSI_VQ_REQUEST } from "../../src/virtio/virtio-scsi.js";

const SECONDS = Number(process.env.FUZZ_SECONDS ?? 12);
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
const bed = new HostileBed();
const stats = { cases: 0, requests: 0, queueErrors: 0, checkConditions: 0, overruns: 0, badTargets: 0 };

/** Opcodes the target serves (from its own REPORT SUPPORTED OPERATION CODES table). */
const SUPPORTED = new Set(Array.from({ length: bed.dp.scsi_opcode_count() }, (_, i) => bed.dp.scsi_opcode_row(i) >>> 16));
const RESPONSES = new Set([0, 1, 2, 3, 5, 9]);

// ---- arbitraries ----

const U64 = (1n << 64n) - 1n;
const edges = [RAM_A, RAM_B].flatMap((g) => [g, g + REGION - 1, g + REGION - 16, g + REGION, g + REGION + 4096, g - 1]);
const addr = fc.oneof(
  { weight: 8, arbitrary: fc.tuple(fc.constantFrom(RAM_A, RAM_B), fc.integer({ min: 0, max: REGION - 1 })).map(([g, o]) => BigInt(g + o)) },
  { weight: 2, arbitrary: fc.constantFrom(...edges.filter((e) => e >= 0)).map(BigInt) },
  { weight: 1, arbitrary: fc.bigInt({ min: U64 - 65536n, max: U64 }) },
  { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: U64 }) },
);
const len = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 9000 }) },
  { weight: 1, arbitrary: fc.constantFrom(0, 1, 16, 48, 0xffffffff, 0x80000000, 65537 * 16, REGION, REGION + 1) },
);
const flags = fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 7 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }) });
const desc = fc.record({ addr, len, flags, next: fc.integer({ min: 0, max: 20 }) });

/** A virtio-scsi request as a well-meaning driver would build it, to be mutated or not. */
const cdbArb = fc
  .tuple(
    fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...SUPPORTED) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) }),
    fc.uint8Array({ minLength: 31, maxLength: 31 }),
    fc.constantFrom("random", "small", "zero"),
  )
  .map(([op, rest, shape]) => {
    const c = new Uint8Array(32);
    c[0] = op;
    if (shape === "random") c.set(rest, 1);
    else if (shape === "small") rest.forEach((b, i) => (c[1 + i] = b % 9));
    return c;
  });
const lunField = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(0, 2, 5, 7, 9, 300).map((l) => [1, 1, 0x40 | (l >> 8), l & 0xff]) },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 })),
  },
);
const request = fc.record({
  lun: lunField,
  cdb: cdbArb,
  hdrLen: fc.oneof({ weight: 8, arbitrary: fc.constant(51) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 60 }) }),
  respLen: fc.oneof({ weight: 8, arbitrary: fc.constant(108) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 200 }) }),
  dataOut: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 2, arbitrary: fc.integer({ min: 1, max: 8192 }) }),
  dataIn: fc.oneof({ weight: 2, arbitrary: fc.constant(0) }, { weight: 3, arbitrary: fc.integer({ min: 1, max: 16384 }) }),
  frag: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 700 }) }),
  indirect: fc.boolean(),
  pi: fc.boolean(),
  // T10-PI byte counts, any of them against any data direction (VIRTIO_SCSI_F_T10_PI).
  piOut: fc.oneof(
    { weight: 4, arbitrary: fc.constant(0) },
    { weight: 2, arbitrary: fc.integer({ min: 1, max: 64 }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 2 ** 32 - 1 }) },
  ),
  piIn: fc.oneof(
    { weight: 4, arbitrary: fc.constant(0) },
    { weight: 2, arbitrary: fc.integer({ min: 1, max: 64 }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 2 ** 32 - 1 }) },
  ),
});
type Request = typeof request extends fc.Arbitrary<infer T> ? T : never;
const mutation = fc.record({
  desc: fc.integer({ min: 0, max: 40 }),
  what: fc.constantFrom("flags", "next", "addr", "len"),
  value: fc.bigInt({ min: 0n, max: U64 }),
});

// ---- driving the bed ----

/** Guest ranges (shared-memory offsets) the case made device-writable, for the memory invariant. */
function writableRanges(descs: Desc[]): [number, number][] {
  const out: [number, number][] = [];
  for (const d of descs) {
    if (!(d.flags & VRING_DESC_F_WRITE) || d.addr > BigInt(Number.MAX_SAFE_INTEGER)) continue;
    const start = Number(d.addr);
    for (const r of bed.regions) {
      const s = Math.max(start, r.gpa);
      const e = Math.min(start + d.len, r.gpa + r.size);
      if (s < e) out.push([r.hva + (s - r.gpa), r.hva + (e - r.gpa)]);
    }
  }
  return out;
}

/** Writes descriptor i of queue q; returns what it wrote (the fields cut to their widths). */
function putDesc(q: FuzzQueue, i: number, d: Desc): Desc {
  const written = { addr: BigInt.asUintN(64, d.addr), len: d.len >>> 0, flags: d.flags & 0xffff, next: d.next & 0xffff };
  q.ring.setDesc(i, Number(written.addr & 0xffffffffn), Number(written.addr >> 32n), written.len, written.flags, written.next);
  placed.push(q.descGpa + 16 * i);
  return written;
}

/**
 * Guest addresses where the case put descriptors. A case may make its own descriptors
 * device-writable; the device then legitimately rewrites them and may follow what it wrote.
 * Their contents seen after every drain call count as the case's descriptors too.
 */
let placed: number[] = [];
let seen: Desc[] = [];

/** Records the descriptors at the placed addresses as they are now. */
function observe(): void {
  const dv = bed.shm.view;
  for (const gpa of placed) {
    const at = bed.hvaOf(gpa);
    if (at < 0 || bed.hvaOf(gpa + 15) < 0) continue;
    seen.push({ addr: dv.getBigUint64(at, true), len: dv.getUint32(at + 8, true), flags: dv.getUint16(at + 12, true), next: dv.getUint16(at + 14, true) });
  }
}

/** An indirect table's entries (they may be device-writable too). */
function putTable(gpa: number, descs: Desc[]): void {
  const dv = bed.shm.view;
  descs.forEach((d, k) => {
    const at = bed.hvaOf(gpa + 16 * k);
    if (at < 0 || bed.hvaOf(gpa + 16 * k + 15) < 0) return;
    placed.push(gpa + 16 * k);
    dv.setBigUint64(at, BigInt.asUintN(64, d.addr), true);
    dv.setUint32(at + 8, d.len >>> 0, true);
    dv.setUint16(at + 12, d.flags, true);
    dv.setUint16(at + 14, d.next, true);
  });
}

function publish(q: FuzzQueue, heads: number[], idx?: number): void {
  heads.forEach((h, k) => q.ring.setAvailRing(k, h));
  q.ring.availIdx = idx ?? heads.length;
}

/** Runs the device on a queue a bounded number of times. */
function drain(kind: "req" | "ctl" | "evt", pi = false): void {
  const dev = pi ? bed.devPi : bed.dev;
  for (let k = 0; k < 4; k++) {
    if (kind === "req") {
      bed.dp.scsi_req_drain(bed.req.dq.ptr, dev, VIRTIO_SCSI_VQ_REQUEST, 64, k % 2 === 1);
      bed.serveQueued();
    } else if (kind === "ctl") bed.dp.scsi_ctl_drain(bed.ctl.dq.ptr, dev, 64) | bed.dp.scsi_ctl_poll(bed.ctl.dq.ptr, dev);
    else bed.dp.scsi_evt_drain(bed.evt.dq.ptr, dev);
    observe();
  }
  // LUN 9's backstore: serve and reap until every request handed to it is answered (multi-step
  // commands post their next step when a completion is reaped).
  if (kind !== "req") return;
  for (let round = 0; bed.serveQueued() > 0 || round === 0; round++) {
    if (round > 1000) throw new Error("requests to the queued LUN never end");
    bed.dp.scsi_req_reap(bed.req.dq.ptr);
    observe();
  }
}

/**
 * The data plane instance still serves a good request: the request ring reset by the control
 * plane (vq_setup, base 0), then INQUIRY to LUN 0 must come back GOOD with the LUN's identity.
 */
function probe(): void {
  const q = bed.req;
  bed.shm.bytes.fill(0, bed.hvaOf(RAM_A), bed.hvaOf(RAM_A) + 0x1000);
  const at = RAM_A + REGION - 0x1000; // beyond every arena the cases use
  const hdr = new Uint8Array(51);
  hdr.set([1, 1, 0x40, 0]);
  hdr.set(inquiry(36), 19);
  bed.shm.bytes.set(hdr, bed.hvaOf(at));
  putDesc(q, 0, { addr: BigInt(at), len: 51, flags: VRING_DESC_F_NEXT, next: 1 });
  putDesc(q, 1, { addr: BigInt(at + 64), len: 108, flags: VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, next: 2 });
  putDesc(q, 2, { addr: BigInt(at + 256), len: 36, flags: VRING_DESC_F_WRITE, next: 0 });
  bed.dp.vq_set_base(q.dq.ptr, 0);
  bed.dp.vq_clear_error(q.dq.ptr);
  publish(q, [0]);
  bed.dp.scsi_req_drain(q.dq.ptr, bed.dev, VIRTIO_SCSI_VQ_REQUEST, 64, false);
  expect(q.ring.usedIdx).toBe(1);
  const resp = bed.shm.bytes.subarray(bed.hvaOf(at + 64), bed.hvaOf(at + 64) + 108);
  expect([resp[10], resp[11]]).toEqual([0, 0]);
  expect(Buffer.from(bed.shm.bytes.subarray(bed.hvaOf(at + 256) + 8, bed.hvaOf(at + 256) + 15)).toString()).toBe("LIO-ORG");
}

/** Every case: reset, lay the case out (act), snapshot, run the device, then the memory invariant and the probe. */
function checked(act: () => Desc[], run: () => void): void {
  bed.reset();
  stats.cases++;
  placed = [];
  seen = [];
  const descs = act();
  bed.mark();
  run();
  const bad = bed.forbiddenChanges(writableRanges([...descs, ...seen]));
  expect(bad.map((o) => bed.describe(o))).toEqual([]);
  // The dirty log's oracle (every queue logs): every guest byte the device wrote is on a marked page.
  expect(bed.unlogged().map((g) => `gpa 0x${g.toString(16)}`)).toEqual([]);
  if (bed.req.dq.error) stats.queueErrors++;
  probe();
}

/**
 * Lays a request out as a chain (direct, or one indirect descriptor) starting at descriptor
 * `first`; null when the descriptor table is full.
 */
function layRequest(
  r: Request,
  first: number,
  arena: { a: number; b: number },
): { descs: Desc[]; head: number; used: number; resp: number; respLen: number } | null {
  if (first >= bed.req.num) return null;
  const bufs: { gpa: number; len: number; write: boolean }[] = [];
  const place = (region: "a" | "b", n: number) => {
    const g = (region === "a" ? RAM_A : RAM_B) + arena[region];
    arena[region] += (n + 15) & ~15;
    return g;
  };
  const reqSize = r.pi ? 59 : 51;
  const hdr = place("a", Math.max(r.hdrLen, reqSize));
  const h = new Uint8Array(Math.max(r.hdrLen, reqSize));
  h.set(r.lun);
  new DataView(h.buffer).setBigUint64(8, BigInt(stats.requests + 1), true);
  if (r.pi) {
    new DataView(h.buffer).setUint32(19, r.piOut, true);
    new DataView(h.buffer).setUint32(23, r.piIn, true);
  }
  h.set(r.cdb, r.pi ? 27 : 19);
  bed.shm.bytes.set(h.subarray(0, r.hdrLen), bed.hvaOf(hdr));
  bufs.push({ gpa: hdr, len: r.hdrLen, write: false });
  if (r.dataOut) bufs.push({ gpa: place("b", r.dataOut), len: r.dataOut, write: false });
  const resp = place("a", r.respLen || 1);
  bufs.push({ gpa: resp, len: r.respLen, write: true });
  if (r.dataIn) bufs.push({ gpa: place("b", r.dataIn), len: r.dataIn, write: true });
  const chain = chainOf(bufs, r.frag);
  const descs: Desc[] = [];
  if (r.indirect || first + chain.length > bed.req.num) {
    const table = place("a", 16 * chain.length);
    chain.forEach((d, k) => (d.next = k + 1));
    putTable(table, chain);
    descs.push(putDesc(bed.req, first, { addr: BigInt(table), len: 16 * chain.length, flags: VRING_DESC_F_INDIRECT, next: 0 }), ...chain);
    return { descs, head: first, used: 1, resp, respLen: r.respLen };
  }
  chain.forEach((d, k) => {
    d.next = first + k + 1;
    descs.push(putDesc(bed.req, first + k, d));
  });
  return { descs, head: first, used: chain.length, resp, respLen: r.respLen };
}

/**
 * Whether vhost-scsi refuses the request's T10-PI sizes: a non-zero pi_bytesout needs data-out,
 * else a non-zero pi_bytesin needs data-in, and the PI bytes must fit the data part.
 */
function piRefused(r: Request): boolean {
  if (!r.pi) return false;
  const outBytes = r.hdrLen + r.dataOut;
  const inBytes = r.respLen + r.dataIn;
  const dir = outBytes > 59 ? "out" : inBytes > 108 ? "in" : "none";
  const data = dir === "out" ? outBytes - 59 : dir === "in" ? inBytes - 108 : 0;
  const bytes = r.piOut || r.piIn;
  if (bytes === 0) return false;
  return dir !== (r.piOut ? "out" : "in") || bytes > data;
}

/** What a well-formed request's response must look like. */
function checkResponse(r: Request, resp: number): void {
  const b = bed.shm.bytes.subarray(bed.hvaOf(resp), bed.hvaOf(resp) + 108);
  const response = b[11];
  const status = b[10];
  expect(RESPONSES.has(response)).toBe(true);
  if (piRefused(r)) expect(response, `PI sizes out ${r.piOut} in ${r.piIn}`).toBe(3);
  if (response === 1) stats.overruns++;
  if (response === 3) stats.badTargets++;
  if (response !== 0) return;
  // GOOD, CHECK CONDITION, BUSY, RESERVATION CONFLICT (a PERSISTENT RESERVE OUT with a key that
  // is not this nexus's), TASK SET FULL.
  expect([0x00, 0x02, 0x08, 0x18, 0x28]).toContain(status);
  const senseLen = new DataView(b.buffer, b.byteOffset).getUint32(0, true);
  if (status !== 2) {
    expect(senseLen).toBe(0);
    return;
  }
  stats.checkConditions++;
  expect(senseLen).toBeGreaterThanOrEqual(8);
  expect(senseLen).toBeLessThanOrEqual(96);
  const s = decodeSense(b.subarray(12, 12 + senseLen));
  expect(s).toBeDefined();
  const code = (s!.asc << 8) | s!.ascq;
  expect(ASC_NAMES[code], `sense ${s!.keyName} ${code.toString(16)}`).toBeDefined();
  // Only a command the LUN does not serve is an invalid operation code (UNMAP needs provisioning:
  // the null LUN 5 has none; COMPARE AND WRITE an in-place LUN: the queued LUN 9 is not one).
  const lun = ((r.lun[2] & 0x3f) << 8) | r.lun[3];
  const notHere = (r.cdb[0] === 0x42 && lun === 5) || (r.cdb[0] === 0x89 && lun === 9);
  if (code === 0x2000) expect(SUPPORTED.has(r.cdb[0]) && !notHere).toBe(false);
}

describe("the memory invariant the campaign relies on", () => {
  it("sees a byte changed in an unmapped gap, in device memory, and in guest RAM the case did not make writable", () => {
    bed.reset();
    bed.mark();
    const lunBlocks = bed.luns[0].ram;
    const targets = [bed.gaps[0].hva + 100, bed.gaps[1].hva + 5, bed.hvaOf(RAM_B + 12345)];
    for (const t of targets) bed.shm.bytes[t] ^= 0xff;
    bed.shm.bytes[lunBlocks] ^= 0xff; // a RAM disk may change
    const sorted = [...targets].sort((a, b) => a - b);
    expect(bed.forbiddenChanges([])).toEqual(sorted);
    expect(bed.forbiddenChanges([[targets[2], targets[2] + 1]])).toEqual(sorted.filter((t) => t !== targets[2]));
    bed.reset();
    bed.mark();
    expect(bed.forbiddenChanges([])).toEqual([]);
  });
});

const runs = (ms: number) => ({ seed: SEED, numRuns: 1_000_000, interruptAfterTimeLimit: ms, markInterruptAsFailure: false });

describe(`hostile guest (seed ${SEED}; replay with FUZZ_SEED=${SEED})`, () => {
  it("random descriptor tables, indirect tables and avail indices: queue errors, never traps or stray writes", () => {
    fc.assert(
      fc.property(
        fc.array(desc, { minLength: 16, maxLength: 16 }),
        fc.array(fc.tuple(fc.integer({ min: 0x8000, max: 0xf000 }), fc.array(desc, { minLength: 1, maxLength: 8 })), { maxLength: 3 }),
        fc.array(fc.integer({ min: 0, max: 20 }), { minLength: 1, maxLength: 6 }),
        fc.oneof(fc.constant(undefined), fc.integer({ min: 0, max: 0xffff })),
        fc.boolean(),
        (table, indirects, heads, idx, pi) => {
          const run = () => drain("req", pi);
          checked(() => {
            const descs = table.map((d, i) => putDesc(bed.req, i, d));
            for (const [gpaOff, t] of indirects) {
              putTable(RAM_A + gpaOff, t);
              descs.push(...t);
            }
            publish(bed.req, heads, idx);
            return descs;
          }, run);
        },
      ),
      runs(SECONDS * 1000),
    );
  });

  it("random virtio-scsi requests and CDBs, some mutated: responses and sense as specified", () => {
    fc.assert(
      fc.property(fc.array(request, { minLength: 1, maxLength: 4 }), fc.array(mutation, { maxLength: 2 }), (reqs, mutations) => {
        const laid: NonNullable<ReturnType<typeof layRequest>>[] = [];
        const pi = reqs[0].pi;
        for (const r of reqs) r.pi = pi;
        const run = () => drain("req", pi);
        checked(() => {
          const arena = { a: 0x8000, b: 0 };
          let next = 0;
          const all: Desc[] = [];
          for (const r of reqs) {
            if (arena.a > REGION - 0x10000 || arena.b > REGION - 0x20000) break;
            const l = layRequest(r, next, arena);
            if (!l) break;
            next += l.used;
            laid.push(l);
            all.push(...l.descs);
          }
          for (const m of mutations) {
            const i = m.desc % bed.req.num;
            const d: Desc = {
              addr: bed.req.ring.descAddr(i),
              len: bed.req.ring.descLen(i),
              flags: bed.req.ring.descFlags(i),
              next: bed.req.ring.descNext(i),
            };
            if (m.what === "flags") d.flags = Number(m.value & 0xffffn);
            else if (m.what === "next") d.next = Number(m.value % 24n);
            else if (m.what === "addr") d.addr = m.value;
            else d.len = Number(m.value & 0xffffffffn);
            all.push(putDesc(bed.req, i, d));
          }
          publish(
            bed.req,
            laid.map((l) => l.head),
          );
          stats.requests += laid.length;
          return all;
        }, run);
        if (mutations.length === 0) {
          // Well-formed chains: no queue error, each returned once, each with a valid answer.
          expect(bed.req.dq.error).toBeUndefined();
        }
      }),
      runs(SECONDS * 1000),
    );
  });

  it("well-formed requests with random CDBs (and random T10-PI sizes) are each answered as the specification says", () => {
    // Well-formed: room for the response, and no more pieces than UIO_MAXIOV iovecs (counted with
    // the T10-PI header, which the case may choose below).
    const pieces = (r: Request) => [59, r.dataOut, r.respLen, r.dataIn].reduce((n, b) => n + (r.frag ? Math.ceil(b / r.frag) : b ? 1 : 0), 0);
    const wellFormed = request.filter((r) => r.respLen >= 108 && pieces(r) <= 1024).map((r) => ({ ...r, hdrLen: r.pi ? 59 : 51 }));
    fc.assert(
      fc.property(fc.array(wellFormed, { minLength: 1, maxLength: 4 }), fc.boolean(), (reqs, pi) => {
        const laid: NonNullable<ReturnType<typeof layRequest>>[] = [];
        for (const r of reqs) {
          r.pi = pi;
          r.hdrLen = pi ? 59 : 51;
        }
        const run = () => {
          drain("req", pi);
          expect(bed.req.ring.usedIdx).toBe(laid.length); // every request answered
        };
        checked(() => {
          const arena = { a: 0x8000, b: 0 };
          let next = 0;
          const all: Desc[] = [];
          for (const r of reqs) {
            const l = layRequest(r, next, arena);
            if (!l) break;
            next += l.used;
            laid.push(l);
            all.push(...l.descs);
          }
          publish(
            bed.req,
            laid.map((l) => l.head),
          );
          return all;
        }, run);
        // checked() ran the probe, which reset the ring; the answers are still in guest memory.
        laid.forEach((l, k) => checkResponse(reqs[k], l.resp));
        stats.requests += laid.length;
      }),
      runs(SECONDS * 1000),
    );
  });

  it("indirect tables chained in any order are served; a next link looping back is IndirectLoop (EINVAL, as get_indirect)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 12 }).chain((n) =>
          fc.record({
            // The chain's order through the table: entry 0 first (VIRTIO 1.2, 2.7.5.3.1), the rest shuffled.
            order: fc.shuffledSubarray(
              [...Array(n - 1).keys()].map((k) => k + 1),
              { minLength: n - 1, maxLength: n - 1 },
            ),
            loopFrom: fc.option(fc.integer({ min: 0, max: n - 1 })),
            loopTo: fc.nat(),
          }),
        ),
        ({ order, loopFrom, loopTo }) => {
          const n = order.length + 1;
          const chainOrder = [0, ...order];
          // INQUIRY to LUN 0 cut into n pieces: the header over the first, response and data over the rest.
          const table = RAM_A + 0x8000;
          const hdr = RAM_A + 0x9000;
          const resp = RAM_A + 0xa000;
          const pieces: Desc[] = [];
          const hdrParts = Math.max(1, Math.floor(n / 3));
          const cut = (gpa: number, len: number, parts: number, write: boolean) => {
            for (let k = 0; k < parts; k++) {
              const s = Math.floor((k * len) / parts);
              const e = Math.floor(((k + 1) * len) / parts);
              pieces.push({ addr: BigInt(gpa + s), len: e - s, flags: write ? VRING_DESC_F_WRITE : 0, next: 0 });
            }
          };
          cut(hdr, 51, hdrParts, false);
          cut(resp, 108 + 36, n - hdrParts, true);
          // Looping: the last link goes back to an earlier entry of the same direction.
          const loops = loopFrom !== null;
          const from = loops ? loopFrom : -1;
          const firstWrite = hdrParts;
          const lo = from >= firstWrite ? firstWrite : 0;
          const to = lo + (loopTo % (from - lo + 1 || 1));
          const entries: Desc[] = Array(n);
          chainOrder.forEach((slot, pos) => {
            const d = { ...pieces[pos] };
            if (pos + 1 < n) d.flags |= VRING_DESC_F_NEXT;
            d.next = pos + 1 < n ? chainOrder[pos + 1] : 0;
            if (pos === from) {
              d.flags |= VRING_DESC_F_NEXT;
              d.next = chainOrder[to];
            }
            entries[slot] = d;
          });
          checked(
            () => {
              const h = new Uint8Array(51);
              h.set([1, 1, 0x40, 0]);
              h.set(inquiry(36), 19);
              bed.shm.bytes.set(h, bed.hvaOf(hdr));
              putTable(table, entries);
              const descs = [putDesc(bed.req, 0, { addr: BigInt(table), len: 16 * n, flags: VRING_DESC_F_INDIRECT, next: 0 }), ...entries];
              publish(bed.req, [0]);
              return descs;
            },
            () => {
              drain("req");
              if (loops) {
                expect(bed.req.dq.error).toMatchObject({ name: "IndirectLoop", errno: "EINVAL" });
                expect(bed.req.ring.usedIdx).toBe(0);
              } else {
                expect(bed.req.dq.error).toBeUndefined();
                expect(bed.req.ring.usedIdx).toBe(1);
                expect(bed.shm.bytes[bed.hvaOf(resp) + 11]).toBe(0);
              }
            },
          );
        },
      ),
      runs((SECONDS * 1000) / 2),
    );
  });

  it("random control-queue requests (TMF, AN, unknown types, short buffers)", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            type: fc.oneof(fc.constantFrom(0, 1, 2), fc.integer({ min: 0, max: 2 ** 32 - 1 })),
            body: fc.uint8Array({ minLength: 0, maxLength: 40 }),
            out: fc.integer({ min: 0, max: 40 }),
            inLen: fc.integer({ min: 0, max: 16 }),
          }),
          { minLength: 1, maxLength: 4 },
        ),
        (reqs) => {
          const run = () => drain("ctl");
          checked(() => {
            const descs: Desc[] = [];
            reqs.forEach((r, k) => {
              const at = RAM_A + 0x20000 + k * 0x100;
              const b = new Uint8Array(Math.max(r.out, 4));
              b.set(r.body.subarray(0, b.length));
              new DataView(b.buffer).setUint32(0, r.type >>> 0, true);
              bed.shm.bytes.set(b, bed.hvaOf(at));
              descs.push(putDesc(bed.ctl, 2 * k, { addr: BigInt(at), len: r.out, flags: VRING_DESC_F_NEXT, next: 2 * k + 1 }));
              descs.push(putDesc(bed.ctl, 2 * k + 1, { addr: BigInt(at + 0x80), len: r.inLen, flags: VRING_DESC_F_WRITE, next: 0 }));
            });
            publish(
              bed.ctl,
              reqs.map((_, k) => 2 * k),
            );
            return descs;
          }, run);
        },
      ),
      runs((SECONDS * 1000) / 2),
    );
  });

  it("event queue buffers of any shape while events are posted", () => {
    fc.assert(
      fc.property(
        fc.array(desc, { minLength: 8, maxLength: 8 }),
        fc.array(fc.integer({ min: 0, max: 9 }), { maxLength: 8 }),
        fc.integer({ min: 0, max: 70 }),
        (table, heads, events) => {
          const run = () => drain("evt");
          checked(() => {
            const descs = table.map((d, i) => putDesc(bed.evt, i, d));
            publish(bed.evt, heads);
            for (let e = 0; e < events; e++) bed.dp.scsi_post_event(bed.dev, 1, 1, e % 400, 1);
            return descs;
          }, run);
        },
      ),
      runs((SECONDS * 1000) / 2),
    );
  });
});

afterAll(() => {
  if (process.env.FUZZ_REPORT)
    appendFileSync(process.env.FUZZ_REPORT, `${JSON.stringify({ seed: SEED, seconds: SECONDS, ...stats, at: new Date().toISOString() })}\n`);
});
