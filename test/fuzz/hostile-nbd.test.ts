// A hostile NBD server against the NBD backstore (issue 29, item 2): random reads and writes, each
// laid over random pieces of a canary-filled buffer (the guest's data-in buffers), while the
// server misbehaves once per request (test/helpers/hostile-nbd-server.ts). Properties: no byte
// written outside the request's own buffers, every request answered once within the timeout
// (data, or an error), a successful read holds the export's bytes and a successful write is in the
// export, and the next request is served (the reconnect works). A second property gives the
// handshake absurd answers: a clear error or a LUN that works, never a hang.
// FUZZ_SECONDS (default 6) sizes the run; FUZZ_SEED replays one; FUZZ_REPORT=path appends a JSON
// line of counts (scripts/fuzz-campaign.mjs sums them).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { appendFileSync } from "node:fs";
import { NbdBackstore } from "../../src/backstore/nbd.js";
import { BS_OP_READ, BS_OP_WRITE, type BackstoreIo } from "../../src/backstore/ring.js";
import { createTestbed } from "../../src/testbed.js";
import { read16 } from "../../src/guest/scsi-commands.js";
import { commandRetryingUA } from "../../src/guest/scan.js";
import { HANDSHAKE_MISBEHAVIOURS, HostileNbdServer, MISBEHAVIOURS, type Misbehaviour } from "../helpers/hostile-nbd-server.js";

const SECONDS = Number(process.env.FUZZ_SECONDS ?? 6);
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Math.floor(Math.random() * 2 ** 31);
const EXPORT = 1 << 20;
const ARENA = 64 << 10;
const CANARY = (i: number) => (i * 37 + 11) & 0xff;
const TIMEOUT_MS = 200;
/** A request must be answered within this (a stall costs TIMEOUT_MS and a reconnect). */
const DEADLINE_MS = 5000;

interface Case {
  write: boolean;
  offset: number;
  length: number;
  /** Where the buffers go in the arena: cut points and gaps. */
  cuts: number[];
  gaps: number[];
  m: Misbehaviour | undefined;
  seed: number;
}

const misbehaviour = fc.oneof(
  { weight: 6, arbitrary: fc.constant(undefined) },
  { weight: 30, arbitrary: fc.constantFrom(...MISBEHAVIOURS.filter((m) => m !== "stall" && m !== "bytewise")) },
  { weight: 1, arbitrary: fc.constantFrom<Misbehaviour>("stall", "bytewise") },
);
const arbCase: fc.Arbitrary<Case> = fc
  .record({
    write: fc.boolean(),
    offset: fc.oneof(
      { weight: 9, arbitrary: fc.integer({ min: 0, max: EXPORT - 1 }) },
      { weight: 1, arbitrary: fc.integer({ min: EXPORT - 4096, max: EXPORT + 4096 }) },
    ),
    length: fc.oneof(fc.integer({ min: 1, max: 512 }), fc.integer({ min: 512, max: 12288 })),
    cuts: fc.array(fc.integer({ min: 1, max: 12287 }), { maxLength: 2 }),
    gaps: fc.array(fc.integer({ min: 1, max: 3000 }), { minLength: 4, maxLength: 4 }),
    m: misbehaviour,
    seed: fc.integer(),
  })
  .map((c) => ({ ...c, cuts: [...new Set(c.cuts.filter((x) => x < c.length))].sort((a, b) => a - b) }));

/** What each absurd handshake must end in (the first two a LUN's own check, the rest the client's). */
const EXPECTED: Record<(typeof HANDSHAKE_MISBEHAVIOURS)[number], RegExp> = {
  "size-zero": /backstore size 0 is not a positive multiple of 512/,
  "size-odd": /backstore size 1048573 is not a positive multiple of 512/,
  "size-huge": /the export's size 9223372036854775808 is beyond 2\^53 - 1 bytes/,
  "block-min-zero": /block size constraints are invalid \(minimum 0,/,
  "block-min-over-max": /block size constraints are invalid \(minimum 65536, preferred 4096/,
  "block-huge": /block size constraints are invalid \(minimum 2147483648,/,
  "reply-huge": /option reply of 2147483647 bytes/,
  "bad-hello": /not an NBD server/,
  close: /closed the connection during the handshake/,
};

describe(`hostile NBD server (seed ${SEED}; replay with FUZZ_SEED=${SEED})`, () => {
  let server: HostileNbdServer;
  const counts = { cases: 0, misbehaved: 0, failedRequests: 0, connections: 0 };
  beforeAll(async () => {
    server = new HostileNbdServer(EXPORT);
    await server.listen();
  });
  afterAll(async () => {
    await server.close();
    counts.connections = server.accepted;
    if (process.env.FUZZ_REPORT)
      appendFileSync(process.env.FUZZ_REPORT, `${JSON.stringify({ file: "hostile-nbd", seed: SEED, nbdCases: counts.cases, ...counts })}\n`);
  });

  it(
    "no byte outside the request's buffers; every request answered once in time, with the export's data or an error; the next one served",
    async () => {
      const b = await NbdBackstore.connect({ uri: server.uri, connections: 2, timeoutMs: TIMEOUT_MS, reconnectMs: 3000 });
      const arena = new Uint8Array(new SharedArrayBuffer(ARENA));
      arena.forEach((_, i) => (arena[i] = CANARY(i)));
      const completions = new Map<BackstoreIo, number>();
      /** Submits io and resolves with its result; rejects when it is not answered by the deadline. */
      const run = (io: BackstoreIo) =>
        new Promise<number>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no answer within ${DEADLINE_MS} ms`)), DEADLINE_MS);
          completions.set(io, 0);
          b.submit([io], (done, result) => {
            completions.set(done, (completions.get(done) ?? 0) + 1);
            clearTimeout(timer);
            resolve(result);
          });
        });
      try {
        await fc.assert(
          fc.asyncProperty(arbCase, async (c) => {
            counts.cases++;
            // The buffers: pieces of the request laid into the arena with canary gaps between.
            const bounds = [0, ...c.cuts, c.length];
            let at = c.gaps[0];
            const pieces = bounds.slice(1).map((end, k) => {
              const len = end - bounds[k];
              const p = { at, len };
              at += len + c.gaps[k + 1];
              return p;
            });
            fc.pre(at <= ARENA);
            const buffers = pieces.map((p) => arena.subarray(p.at, p.at + p.len));
            const data = new Uint8Array(c.length).map((_, i) => (c.seed + i * 7) & 0xff);
            if (c.write) {
              let o = 0;
              for (const buf of buffers) {
                buf.set(data.subarray(o, o + buf.length));
                o += buf.length;
              }
            }
            server.next = c.m;
            const before = server.misbehaved;
            const io: BackstoreIo = { op: c.write ? BS_OP_WRITE : BS_OP_READ, offset: c.offset, length: c.length, buffers, fua: false };
            const result = await run(io);
            counts.misbehaved += server.misbehaved - before;
            const inRange = c.offset + c.length <= EXPORT;
            if (!inRange || c.m === "error") {
              expect(result).toBeLessThan(0);
              counts.failedRequests++;
            } else {
              expect(result).toBe(c.length);
              const got = new Uint8Array(c.length);
              let o = 0;
              for (const buf of buffers) {
                got.set(buf, o);
                o += buf.length;
              }
              const want = c.write ? data : server.image.subarray(c.offset, c.offset + c.length);
              expect(Buffer.from(got).equals(Buffer.from(want))).toBe(true);
              if (c.write) expect(server.image.subarray(c.offset, c.offset + c.length).equals(Buffer.from(data))).toBe(true);
            }
            // Canaries: every byte outside the request's buffers as it was; then the buffers back to canary.
            const inside = (i: number) => pieces.some((p) => i >= p.at && i < p.at + p.len);
            for (let i = 0; i < ARENA; i++) if (!inside(i) && arena[i] !== CANARY(i)) throw new Error(`arena byte ${i} was written`);
            for (const p of pieces) for (let i = p.at; i < p.at + p.len; i++) arena[i] = CANARY(i);
            // Answered once, and the connection (or a new one) serves the next request.
            for (const n of completions.values()) expect(n).toBeLessThanOrEqual(1);
            const probe = new Uint8Array(512);
            expect(await run({ op: BS_OP_READ, offset: 0, length: 512, buffers: [probe], fua: false })).toBe(512);
            expect(Buffer.from(probe).equals(server.image.subarray(0, 512))).toBe(true);
            completions.clear();
          }),
          { seed: SEED, numRuns: 1_000_000, interruptAfterTimeLimit: SECONDS * 1000, markInterruptAsFailure: false },
        );
      } finally {
        await b.close();
      }
      expect(counts.cases).toBeGreaterThan(50);
    },
    (SECONDS + 60) * 1000,
  );

  it("absurd handshake answers: a clear error or a LUN that reads back, within the handshake timeout", async () => {
    for (const h of HANDSHAKE_MISBEHAVIOURS) {
      server.nextHandshake = h;
      const t0 = Date.now();
      let outcome: string;
      try {
        const bed = await createTestbed({ luns: [{ backstore: "nbd", uri: server.uri, connections: 1, timeoutMs: 2000 }] });
        try {
          const r = await commandRetryingUA(bed.driver, { lun: 0, cdb: read16(0, 1), dataInLength: 512 });
          outcome = r.status === 0 && Buffer.from(r.dataIn).equals(server.image.subarray(0, 512)) ? "works" : `status ${r.status}`;
        } finally {
          await bed.close();
        }
      } catch (e) {
        outcome = (e as Error).message;
      }
      expect(Date.now() - t0, h).toBeLessThan(DEADLINE_MS);
      // A clear error names what was wrong.
      expect(outcome, h).toMatch(EXPECTED[h]);
    }
  }, 60_000);
});
