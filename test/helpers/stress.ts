// The integrity stress used by the reliability tests and the network backstore's tests: several
// submitters on several queues, random reads and writes of random sizes over overlapping LBAs,
// every block stamped with its LBA, a generation and a checksum, checked against a model.
import { expect } from "vitest";
import { createTestbed, type TestbedOptions } from "../../src/testbed.js";
import { read10, write10, testUnitReady } from "../../src/guest/scsi-commands.js";
import { commandRetryingUA } from "../../src/guest/scan.js";

export const OPS = Number(process.env.STRESS_OPS ?? 6000);
export const BLOCKS = 8192; // 4 MiB of 512-byte blocks

/** A block's content for generation gen: [lba, gen, checksum] then bytes derived from both. */
function stamp(lba: number, gen: number): Uint8Array {
  const b = new Uint8Array(512);
  const w = new Uint32Array(b.buffer);
  let x = (Math.imul(lba + 1, 0x9e3779b1) ^ Math.imul(gen + 7, 0x85ebca6b)) >>> 0;
  for (let k = 3; k < 128; k++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    w[k] = x >>> 0;
  }
  w[0] = lba;
  w[1] = gen;
  w[2] = checksum(b);
  return b;
}

/** FNV-1a over the block's bytes after the header. */
function checksum(b: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 12; i < 512; i++) h = Math.imul(h ^ b[i], 0x01000193) >>> 0;
  return h;
}

const UNKNOWN = -1;

export interface Outcome {
  ops: number;
  reads: number;
  writes: number;
  mismatches: number;
  failed: number;
  blocksChecked: number;
}

/**
 * Runs `submitters` async submitters, each on its own request queue (round robin), until OPS
 * commands have completed. A per-block lock keeps a read from running beside a write of the
 * same block (the model would not know which it sees) while different submitters keep hitting
 * the same LBAs over time.
 */
export async function stress(opts: TestbedOptions, submitters: number): Promise<Outcome> {
  const bed = await createTestbed(opts);
  try {
    await commandRetryingUA(bed.driver, { lun: 0, cdb: testUnitReady() });
    const gen = new Int32Array(BLOCKS); // 0: never written (reads as zeroes)
    const readers = new Uint16Array(BLOCKS);
    const writer = new Uint8Array(BLOCKS);
    const completions = new Map<bigint, number>();
    const out: Outcome = { ops: 0, reads: 0, writes: 0, mismatches: 0, failed: 0, blocksChecked: 0 };
    let started = 0;
    let nextGen = 1;
    let nextTag = 1n << 32n;
    let seed = 12345;
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const free = (lba: number, n: number, write: boolean) => {
      for (let b = lba; b < lba + n; b++) if (writer[b] || (write && readers[b])) return false;
      return true;
    };
    const one = async (queue: number) => {
      // Hot spots: half the I/O goes to the first 256 blocks, so submitters collide on LBAs.
      const span = rand(2) ? 256 : BLOCKS;
      const n = 1 + rand(32);
      const lba = rand(span - n);
      const write = rand(2) === 0;
      if (!free(lba, n, write)) return;
      started++;
      const tag = nextTag++;
      if (write) {
        const g = nextGen++;
        const data = new Uint8Array(512 * n);
        for (let k = 0; k < n; k++) {
          writer[lba + k] = 1;
          data.set(stamp(lba + k, g), 512 * k);
        }
        const r = await bed.driver.command({ lun: 0, queue, tag, cdb: write10(lba, n), dataOut: data });
        completions.set(tag, (completions.get(tag) ?? 0) + 1);
        const ok = r.response === 0 && r.status === 0;
        for (let k = 0; k < n; k++) {
          // A failed write may have written some of the blocks: their content is unknown now.
          gen[lba + k] = ok ? g : UNKNOWN;
          writer[lba + k] = 0;
        }
        out.writes++;
        if (!ok) out.failed++;
      } else {
        for (let k = 0; k < n; k++) readers[lba + k]++;
        const r = await bed.driver.command({ lun: 0, queue, tag, cdb: read10(lba, n), dataInLength: 512 * n });
        completions.set(tag, (completions.get(tag) ?? 0) + 1);
        for (let k = 0; k < n; k++) readers[lba + k]--;
        out.reads++;
        if (r.response !== 0 || r.status !== 0) {
          out.failed++;
        } else {
          for (let k = 0; k < n; k++) {
            const g = gen[lba + k];
            if (g === UNKNOWN) continue;
            out.blocksChecked++;
            const got = r.dataIn.subarray(512 * k, 512 * (k + 1));
            const want = g === 0 ? new Uint8Array(512) : stamp(lba + k, g);
            if (!Buffer.from(got).equals(Buffer.from(want))) out.mismatches++;
            else if (g !== 0 && new Uint32Array(got.slice().buffer)[2] !== checksum(got)) out.mismatches++;
          }
        }
      }
      out.ops++;
    };
    const submitter = async (s: number) => {
      const queue = s % (opts.queues ?? 1);
      while (started < OPS) {
        const inflight: Promise<void>[] = [];
        for (let d = 0; d < 8 && started < OPS; d++) inflight.push(one(queue));
        await Promise.all(inflight);
      }
    };
    await Promise.all(Array.from({ length: submitters }, (_, s) => submitter(s)));
    expect(completions.size).toBe(out.ops);
    expect([...completions.values()].every((c) => c === 1)).toBe(true);
    return out;
  } finally {
    await bed.close();
  }
}
