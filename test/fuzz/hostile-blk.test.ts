// Hostile-driver property tests of the virtio-blk request queue against the real data plane
// (VIRTIO 1.2, 5.2.6; QEMU's virtio-blk reactions): random request types, sectors at and past
// every edge and near 2^64, data lengths that are and are not whole blocks, DISCARD and
// WRITE_ZEROES segments with random fields, headers cut short, status bytes missing or sharing a
// buffer with the data, fragmented and indirect chains, and random descriptor mutations, on a
// RAM device and one whose backstore is served elsewhere (completing out of order, some with EIO).
// After every case: nothing trapped, no byte changed outside what the guest made device-writable
// and the device's own state, every guest byte the device wrote on a page its dirty log marked
// (the queue logs, VHOST_F_LOG_ALL, its used ring included), every well-formed request answered
// with the status a model of the rules predicts, and the instance still serves a good request.
//
// FUZZ_SECONDS (default 6 per property) sizes the run; FUZZ_SEED replays one; FUZZ_REPORT=path
// appends the campaign's figures as JSON.
import { afterAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { appendFileSync } from "node:fs";
import { BLK_MAX_DWZ_SECTORS, BLK_RAM_BYTES, HostileBed, RAM_A, RAM_B, REGION, chainOf, type Desc } from "../helpers/hostile-bed.js";
import { VRING_DESC_F_INDIRECT, VRING_DESC_F_WRITE } from "../../src/virtio/ring.js";
import {
  VIRTIO_BLK_S_IOERR,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_WRITE_ZEROES,
} from "../../src/virtio/virtio-blk.js";

const SECONDS = Number(process.env.FUZZ_SECONDS ?? 6);
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
const bed = new HostileBed();
const q = bed.blk;
const STATUS_UNSET = 0xee;

/** The two devices: capacity in sectors and logical block size. */
const DEVICES = [
  { name: "ram", dev: bed.blkRam, sectors: BLK_RAM_BYTES / 512, block: 512, queued: false },
  { name: "queued", dev: bed.blkQueued, sectors: bed.queuedBlocks.length / 512, block: 4096, queued: true },
];

const TYPES = [VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES];
const sector = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 600 }).map(BigInt) },
  { weight: 2, arbitrary: fc.constantFrom(255n, 256n, 504n, 511n, 512n, 513n, 2n ** 32n, 2n ** 55n - 1n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 64n - 8n) },
);
const request: fc.Arbitrary<Request> = fc.record({
  type: fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...TYPES) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 2 ** 32 - 1 }) }),
  sector,
  hdrLen: fc.oneof({ weight: 8, arbitrary: fc.constant(16) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 24 }) }),
  data: fc.oneof(
    { weight: 2, arbitrary: fc.constant(0) },
    { weight: 4, arbitrary: fc.constantFrom(512, 1024, 4096, 8192, 65536) },
    { weight: 2, arbitrary: fc.integer({ min: 1, max: 20000 }) },
  ),
  /** DISCARD / WRITE_ZEROES: the segments' fields, or raw bytes. */
  segs: fc.array(
    fc.record({ sector, sectors: fc.oneof(fc.integer({ min: 0, max: 80 }), fc.integer({ min: 0, max: 2 ** 32 - 1 })), flags: fc.constantFrom(0, 0, 1, 2, 3) }),
    {
      minLength: 1,
      maxLength: 2,
    },
  ),
  statusLen: fc.oneof({ weight: 8, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.constantFrom(0, 2, 7) }),
  /** The status shares the data-in's last buffer. */
  joined: fc.boolean(),
  frag: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 900 }) }),
  indirect: fc.boolean(),
});
/** One request as the case lays it out. */
interface Request {
  type: number;
  sector: bigint;
  hdrLen: number;
  data: number;
  segs: { sector: bigint; sectors: number; flags: number }[];
  statusLen: number;
  joined: boolean;
  frag: number;
  indirect: boolean;
}

/** Descriptors the request's chain takes (a chain of more than UIO_MAXIOV stalls the queue, as the kernel's). */
function pieces(r: Request): number {
  const { out, inLen } = parts(r);
  const lens = r.joined && inLen > 0 && r.statusLen > 0 ? [out.length, inLen + r.statusLen] : [out.length, inLen, r.statusLen];
  return lens.reduce((n, b) => n + (r.frag ? Math.max(1, Math.ceil(b / r.frag)) : b ? 1 : 0), 0);
}

/** What the request's readable and writable parts hold. */
function parts(r: Request): { out: Uint8Array; inLen: number } {
  const hdr = new Uint8Array(16);
  const dv = new DataView(hdr.buffer);
  dv.setUint32(0, r.type >>> 0, true);
  dv.setBigUint64(8, r.sector, true);
  let payload = new Uint8Array(0);
  if (r.type === VIRTIO_BLK_T_OUT) payload = new Uint8Array(r.data).map((_, i) => (i * 13 + 7) & 0xff);
  else if (r.type === VIRTIO_BLK_T_DISCARD || r.type === VIRTIO_BLK_T_WRITE_ZEROES) {
    payload = new Uint8Array(16 * r.segs.length);
    const pv = new DataView(payload.buffer);
    r.segs.forEach((s, i) => {
      pv.setBigUint64(16 * i, s.sector, true);
      pv.setUint32(16 * i + 8, s.sectors >>> 0, true);
      pv.setUint32(16 * i + 12, s.flags, true);
    });
  }
  const out = new Uint8Array(r.hdrLen + payload.length);
  out.set(hdr.subarray(0, Math.min(16, r.hdrLen)));
  if (r.hdrLen >= 16) out.set(payload, r.hdrLen);
  const inLen = r.type === VIRTIO_BLK_T_IN || r.type === VIRTIO_BLK_T_GET_ID ? r.data : 0;
  return { out, inLen };
}

/** The status the rules give a request with a whole header and a status byte (VIRTIO 1.2, 5.2.6; QEMU's checks). */
function expectedStatus(r: Request, d: (typeof DEVICES)[number]): number | "any" {
  const rangeOk = (s: bigint, bytes: number) => {
    const blockSectors = BigInt(d.block / 512);
    if (bytes % d.block !== 0 || s % blockSectors !== 0n) return false;
    return s <= BigInt(d.sectors) && BigInt(bytes / 512) <= BigInt(d.sectors) - s;
  };
  const extraOut = r.hdrLen - 16; // readable bytes after the header that are not the payload
  switch (r.type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT: {
      const len = r.type === VIRTIO_BLK_T_IN ? r.data + (r.statusLen - 1) : r.data + extraOut;
      if (!rangeOk(r.sector, len)) return VIRTIO_BLK_S_IOERR;
      return d.queued ? "any" : VIRTIO_BLK_S_OK; // the queued backstore fails some offsets (EIO)
    }
    case VIRTIO_BLK_T_FLUSH:
      return d.queued ? "any" : VIRTIO_BLK_S_OK;
    case VIRTIO_BLK_T_GET_ID:
      return VIRTIO_BLK_S_OK;
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES: {
      if (r.segs.length !== 1 || extraOut !== 0) return VIRTIO_BLK_S_UNSUPP;
      const s = r.segs[0];
      if (s.flags & ~(r.type === VIRTIO_BLK_T_WRITE_ZEROES ? 1 : 0)) return VIRTIO_BLK_S_UNSUPP;
      if (s.sectors > BLK_MAX_DWZ_SECTORS || !rangeOk(s.sector, s.sectors * 512)) return VIRTIO_BLK_S_IOERR;
      return d.queued ? "any" : VIRTIO_BLK_S_OK;
    }
    default:
      return VIRTIO_BLK_S_UNSUPP;
  }
}

let arena = 0;
function place(bytes: Uint8Array | number, region: number): number {
  const n = typeof bytes === "number" ? bytes : bytes.length;
  const gpa = region + 0x8000 + arena;
  arena += (n + 16 + 15) & ~15;
  const at = bed.hvaOf(gpa);
  if (typeof bytes === "number") bed.shm.bytes.fill(STATUS_UNSET, at, at + n);
  else bed.shm.bytes.set(bytes, at);
  return gpa;
}

/** Lays request r out at descriptor `first`; its descriptors, head, status address (or -1) and the slots used. */
function lay(r: Request, first: number): { descs: Desc[]; head: number; status: number; used: number } | null {
  const { out, inLen } = parts(r);
  const bufs: { gpa: number; len: number; write: boolean }[] = [];
  bufs.push({ gpa: place(out, RAM_A), len: out.length, write: false });
  let status = -1;
  if (r.joined && inLen > 0 && r.statusLen > 0) {
    const g = place(inLen + r.statusLen, RAM_B);
    bufs.push({ gpa: g, len: inLen + r.statusLen, write: true });
    status = g + inLen + r.statusLen - 1;
  } else {
    if (inLen > 0) bufs.push({ gpa: place(inLen, RAM_B), len: inLen, write: true });
    if (r.statusLen > 0) {
      const g = place(r.statusLen, RAM_A);
      bufs.push({ gpa: g, len: r.statusLen, write: true });
      status = g + r.statusLen - 1;
    }
  }
  const chain = chainOf(bufs, r.frag);
  if (r.indirect || first + chain.length > q.num) {
    if (first >= q.num) return null;
    const table = place(16 * chain.length, RAM_A);
    chain.forEach((d, k) => {
      d.next = k + 1;
      const at = bed.hvaOf(table + 16 * k);
      bed.shm.view.setBigUint64(at, d.addr, true);
      bed.shm.view.setUint32(at + 8, d.len, true);
      bed.shm.view.setUint16(at + 12, d.flags, true);
      bed.shm.view.setUint16(at + 14, d.next, true);
    });
    const ind = { addr: BigInt(table), len: 16 * chain.length, flags: VRING_DESC_F_INDIRECT, next: 0 };
    q.ring.setDesc(first, table, 0, ind.len, ind.flags, 0);
    return { descs: [ind, ...chain], head: first, status, used: 1 };
  }
  chain.forEach((d, k) => {
    d.next = first + k + 1;
    q.ring.setDesc(first + k, Number(d.addr & 0xffffffffn), Number(d.addr >> 32n), d.len, d.flags, d.next);
  });
  return { descs: chain, head: first, status, used: chain.length };
}

/** Guest ranges the case made device-writable (shared-memory offsets). */
function writable(descs: Desc[]): [number, number][] {
  return descs
    .filter((d) => d.flags & VRING_DESC_F_WRITE && bed.hvaOf(Number(d.addr)) >= 0)
    .map((d) => [bed.hvaOf(Number(d.addr)), bed.hvaOf(Number(d.addr)) + d.len]);
}

/** Drains the queue through device dev, serving the queued backstore until every request is answered. */
function drain(dev: number): void {
  for (let k = 0; k < 4; k++) {
    bed.dp.blk_req_drain(q.dq.ptr, dev, 64, k % 2 === 1);
    bed.serveQueued();
  }
  for (let round = 0; bed.serveQueued() > 0 || bed.dp.vq_inflight(q.dq.ptr) > 0 || round === 0; round++) {
    if (round > 1000) throw new Error("requests to the queued backstore never end");
    bed.dp.blk_req_reap(q.dq.ptr);
  }
}

/** A good FLUSH on the RAM device is answered OK: the instance still serves. */
function probe(): void {
  bed.dp.vq_set_base(q.dq.ptr, 0);
  bed.dp.vq_clear_error(q.dq.ptr);
  arena = 0x60000;
  const l = lay({ type: VIRTIO_BLK_T_FLUSH, sector: 0n, hdrLen: 16, data: 0, segs: [], statusLen: 1, joined: false, frag: 0, indirect: false }, 0)!;
  q.ring.setAvailRing(0, l.head);
  q.ring.availIdx = 1;
  bed.dp.blk_req_drain(q.dq.ptr, bed.blkRam, 64, false);
  expect(q.ring.usedIdx).toBe(1);
  expect(bed.shm.bytes[bed.hvaOf(l.status)]).toBe(VIRTIO_BLK_S_OK);
}

const runs = (ms: number) => ({ seed: SEED, numRuns: 1_000_000, interruptAfterTimeLimit: ms, markInterruptAsFailure: false });
const stats = { cases: 0, requests: 0, queueErrors: 0 };

describe(`hostile virtio-blk driver (seed ${SEED}; replay with FUZZ_SEED=${SEED})`, () => {
  it("random requests and layouts, some mutated: the specified status, never a stray write", () => {
    const mutation = fc.record({
      desc: fc.integer({ min: 0, max: 15 }),
      what: fc.constantFrom("flags", "next", "addr", "len"),
      value: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    });
    fc.assert(
      // Up to twice UIO_MAXIOV pieces (longer chains only stall the queue the same way, and slowly).
      fc.property(
        fc.array(
          request.filter((r) => pieces(r) <= 2048),
          { minLength: 1, maxLength: 4 },
        ),
        fc.constantFrom(0, 1),
        fc.array(mutation, { maxLength: 2 }),
        (reqs, which, mutations) => {
          const d = DEVICES[which];
          bed.reset();
          stats.cases++;
          arena = 0;
          const laid: { r: Request; l: NonNullable<ReturnType<typeof lay>> }[] = [];
          const descs: Desc[] = [];
          let next = 0;
          for (const r of reqs) {
            if (arena > REGION / 2) break;
            const l = lay(r, next);
            if (!l) break;
            next += l.used;
            laid.push({ r, l });
            descs.push(...l.descs);
          }
          for (const m of mutations) {
            const i = m.desc % q.num;
            const md: Desc = { addr: q.ring.descAddr(i), len: q.ring.descLen(i), flags: q.ring.descFlags(i), next: q.ring.descNext(i) };
            if (m.what === "flags") md.flags = Number(m.value & 0xffffn);
            else if (m.what === "next") md.next = Number(m.value % 20n);
            else if (m.what === "addr") md.addr = m.value;
            else md.len = Number(m.value & 0xffffffffn);
            q.ring.setDesc(i, Number(md.addr & 0xffffffffn), Number(md.addr >> 32n), md.len, md.flags, md.next);
            descs.push(md);
          }
          laid.forEach(({ l }, k) => q.ring.setAvailRing(k, l.head));
          q.ring.availIdx = laid.length;
          stats.requests += laid.length;
          bed.mark();
          drain(d.dev);
          const bad = bed.forbiddenChanges(writable(descs));
          expect(bad.map((o) => bed.describe(o))).toEqual([]);
          // The dirty log's oracle (the queue logs): every guest byte the device wrote is on a marked page.
          expect(bed.unlogged().map((g) => `gpa 0x${g.toString(16)}`)).toEqual([]);
          if (q.dq.error) stats.queueErrors++;
          if (mutations.length === 0 && laid.every(({ r }) => pieces(r) <= 1024)) {
            // Well-formed rings: every chain returned; those with a header and a status byte answered by the rules.
            expect(q.ring.usedIdx).toBe(laid.length);
            for (const { r, l } of laid) {
              if (r.hdrLen < 16 || r.statusLen === 0) continue;
              const want = expectedStatus(r, d);
              const got = bed.shm.bytes[bed.hvaOf(l.status)];
              if (want === "any") expect([VIRTIO_BLK_S_OK, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_UNSUPP]).toContain(got);
              else expect({ type: r.type, sector: r.sector, got }).toEqual({ type: r.type, sector: r.sector, got: want });
            }
          }
          probe();
        },
      ),
      runs(SECONDS * 1000),
    );
  });

  it("a RAM device's blocks hold what was written, as a model of the disk says", () => {
    const model = new Uint8Array(BLK_RAM_BYTES);
    const disk = () => bed.shm.bytes.subarray(bed.blkRamBlocks, bed.blkRamBlocks + BLK_RAM_BYTES);
    bed.reset();
    const rw: fc.Arbitrary<Request> = fc.record({
      type: fc.constantFrom(VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_WRITE_ZEROES, VIRTIO_BLK_T_DISCARD),
      sector: fc.integer({ min: 0, max: BLK_RAM_BYTES / 512 - 1 }).map(BigInt),
      data: fc.integer({ min: 1, max: 16 }).map((n) => n * 512),
      segs: fc.integer({ min: 1, max: 16 }).map((n) => [{ sector: 0n, sectors: n, flags: 0 }]),
      hdrLen: fc.constant(16),
      statusLen: fc.constant(1),
      joined: fc.constant(false),
      frag: fc.constantFrom(0, 300),
      indirect: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(rw, { minLength: 1, maxLength: 4 }), (reqs) => {
        bed.dp.vq_set_base(q.dq.ptr, 0);
        arena = 0;
        let next = 0;
        const laid = [];
        for (const r of reqs) {
          r.segs[0].sector = r.sector;
          const l = lay(r, next);
          if (!l) break;
          next += l.used;
          laid.push(l);
          const { out } = parts(r);
          const bytes = r.type === VIRTIO_BLK_T_OUT ? r.data : r.segs[0].sectors * 512;
          const at = Number(r.sector) * 512;
          if (at + bytes > BLK_RAM_BYTES) continue;
          if (r.type === VIRTIO_BLK_T_OUT) model.set(out.subarray(16), at);
          else model.fill(0, at, at + bytes);
        }
        laid.forEach((l, k) => q.ring.setAvailRing(k, l.head));
        q.ring.availIdx = laid.length;
        bed.dp.blk_req_drain(q.dq.ptr, bed.blkRam, 64, false);
        expect(q.ring.usedIdx).toBe(laid.length);
        expect(Buffer.from(disk()).equals(Buffer.from(model))).toBe(true);
      }),
      { seed: SEED, numRuns: 300 },
    );
  });
});

afterAll(() => {
  if (process.env.FUZZ_REPORT)
    appendFileSync(
      process.env.FUZZ_REPORT,
      `${JSON.stringify({ device: "virtio-blk", seed: SEED, seconds: SECONDS, ...stats, at: new Date().toISOString() })}\n`,
    );
});
