// The TypeScript load engine: the library's PolledScsiQueue (the guest driver's polled request
// queue) with the job's block choice, checks, verify stamps and HDR histograms in TypeScript.
// It does reads and writes of one size (options.ts refuses trims and two sizes for it).
import type { Histogram } from "hdr-histogram-js";
import { latencyHistogram } from "./job-result.js";
import { PolledScsiQueue } from "../src/guest/polled-queue.js";
import {
  PHASE_FILL,
  PHASE_READBACK,
  PHASE_RUN,
  type EngineCounts,
  type FirstError,
  type GuestEngine,
  type JobInit,
  type Phase,
  jobSeed,
  rwPattern,
  xorshift32,
} from "./guest-engine.js";
import { matches, stamp } from "./verify-stamp.js";
import { decodeSense } from "../src/guest/sense.js";

export class TsGuestEngine implements GuestEngine {
  private readonly queues: PolledScsiQueue[];
  private readonly o: JobInit["opts"];
  private readonly blocks: number;
  private readonly sequential: boolean;
  private readonly mixed: boolean;
  private readonly allReads: boolean;
  private seed: number;
  private seqNext = 0;
  /** --verify: the generation last written to each block (0: never), and blocks in flight. */
  private readonly gens: Uint32Array | undefined;
  private readonly busy: Uint8Array | undefined;
  private genCounter = 1;
  /** Per queue and slot: what is in flight. */
  private readonly slotBlock: Int32Array[];
  private readonly slotRead: Uint8Array[];
  private readonly slotStart: Float64Array[];
  private readonly hist: [Histogram, Histogram, Histogram] = [latencyHistogram(), latencyHistogram(), latencyHistogram()];
  private first: FirstError | undefined;
  private readonly c: EngineCounts = {
    read: { ios: 0, bytes: 0, latNs: 0 },
    write: { ios: 0, bytes: 0, latNs: 0 },
    trim: { ios: 0, bytes: 0, latNs: 0 },
    errors: 0,
    verified: 0,
    mismatches: 0,
    kicks: 0,
  };
  private readonly doneFns: ((slot: number, ok: boolean) => void)[];
  private phase: Phase = PHASE_RUN;
  private cursor = 0;
  private stopping = false;
  /** Requests the run phase may start (limit()), those it started, and the slots waiting for the limit. */
  private allowed = Infinity;
  private started = 0;
  private readonly waiting: [number, number][] = [];
  private now = 0;

  constructor(private readonly init: JobInit) {
    const o = (this.o = init.opts);
    this.queues = init.queues.map(
      (q) =>
        new PolledScsiQueue(init.buffer, q.ring, {
          target: init.target,
          lun: 0,
          depth: q.depth,
          bytes: o.bs,
          blockSize: o.blockSize,
          bufferGpa: q.bufferGpa,
          bufferHva: q.bufferHva,
        }),
    );
    this.blocks = Math.floor(init.regionBytes / o.bs);
    ({ sequential: this.sequential, mixed: this.mixed, allReads: this.allReads } = rwPattern(o.rw));
    this.seed = jobSeed(init.index);
    this.gens = o.verify ? new Uint32Array(this.blocks) : undefined;
    this.busy = o.verify ? new Uint8Array(this.blocks) : undefined;
    this.slotBlock = init.queues.map((q) => new Int32Array(q.depth));
    this.slotRead = init.queues.map((q) => new Uint8Array(q.depth));
    this.slotStart = init.queues.map((q) => new Float64Array(q.depth));
    this.doneFns = this.queues.map((_, qi) => (slot: number, ok: boolean) => this.complete(qi, slot, ok));
  }

  /** xorshift32: the job's random stream. */
  private rand(): number {
    this.seed = xorshift32(this.seed);
    return this.seed;
  }

  /** The block a new request addresses; -1 when the phase has no more. */
  private nextBlock(): number {
    if (this.phase !== PHASE_RUN) {
      let c = this.cursor;
      if (this.phase === PHASE_READBACK) while (c < this.blocks && this.gens![c] === 0) c++;
      if (c >= this.blocks) return -1;
      this.cursor = c + 1;
      return c;
    }
    for (let tries = 0; ; tries++) {
      const b = this.sequential ? this.seqNext++ % this.blocks : this.rand() % this.blocks;
      if (!this.busy?.[b] || tries >= 64) return b;
    }
  }

  private issue(qi: number, slot: number): boolean {
    if (this.phase === PHASE_RUN) {
      if (this.started >= this.allowed) {
        this.waiting.push([qi, slot]);
        return false;
      }
      this.started++;
    }
    const { gens, busy } = this;
    let read =
      this.phase === PHASE_FILL
        ? false
        : this.phase === PHASE_READBACK
          ? true
          : this.allReads
            ? true
            : this.mixed
              ? this.rand() % 100 < this.o.rwmixread
              : false;
    const b = this.nextBlock();
    if (b < 0) return false;
    if (gens && read && this.phase === PHASE_RUN && gens[b] === 0) read = false; // nothing to check yet: write it first
    this.slotBlock[qi][slot] = b;
    this.slotRead[qi][slot] = read ? 1 : 0;
    if (busy) busy[b] = 1;
    const q = this.queues[qi];
    if (gens && !read) {
      gens[b] = this.genCounter++;
      stamp(q.data(slot), b, gens[b]);
    }
    this.slotStart[qi][slot] = this.now;
    q.submit(slot, read, this.init.regionStart + b * this.o.bs);
    return true;
  }

  private complete(qi: number, slot: number, ok: boolean): void {
    const read = this.slotRead[qi][slot] === 1;
    const b = this.slotBlock[qi][slot];
    if (!ok) {
      this.c.errors++;
      this.first ??= this.failure(qi, slot, read);
    } else if (this.phase === PHASE_RUN) {
      const lat = Math.max(1, Math.round((this.now - this.slotStart[qi][slot]) * 1e6));
      this.hist[read ? 0 : 1].recordValue(lat);
      const d = read ? this.c.read : this.c.write;
      d.latNs += lat;
      d.ios++;
      d.bytes += this.o.bs;
    }
    if (this.gens) {
      this.busy![b] = 0;
      // A write that failed left the block's contents unknown: nothing to check until it is written again.
      if (!ok && !read) this.gens[b] = 0;
      if (read && ok) {
        this.c.verified++;
        if (!matches(this.queues[qi].data(slot), b, this.gens[b])) this.c.mismatches++;
      }
    }
    if (!this.stopping) this.issue(qi, slot);
  }

  /** What the device answered a failed request. */
  private failure(qi: number, slot: number, read: boolean): FirstError {
    const r = this.queues[qi].response(slot);
    const dv = new DataView(r.buffer, r.byteOffset, r.byteLength);
    const sense = decodeSense(r.subarray(12, 12 + Math.min(96, dv.getUint32(0, true))));
    return {
      op: read ? "read" : "write",
      response: r[11],
      status: r[10],
      senseKey: sense?.key ?? 0,
      asc: sense?.asc ?? 0,
      ascq: sense?.ascq ?? 0,
      offset: this.init.regionStart + this.slotBlock[qi][slot] * this.o.bs,
      length: this.o.bs,
    };
  }

  begin(phase: Phase, now: number): void {
    this.phase = phase;
    this.cursor = 0;
    this.stopping = false;
    this.started = 0;
    this.waiting.length = 0;
    this.now = now;
    this.init.queues.forEach((q, qi) => {
      // A fill or read-back has no more blocks; a limited run leaves the slot waiting and goes on.
      for (let s = 0; s < q.depth; s++) if (!this.issue(qi, s) && phase !== PHASE_RUN) break;
    });
    for (const q of this.queues) q.publish();
  }

  /** Whether a pass would reap anything (a loop: a callback here allocated on every idle pass). */
  private ready(): boolean {
    for (const q of this.queues) if (q.ready) return true;
    return false;
  }

  pass(): number {
    if (!this.ready() && this.waiting.length === 0) return 0;
    this.now = performance.now();
    let n = 0;
    for (let qi = 0; qi < this.queues.length; qi++) n += this.queues[qi].reap(this.doneFns[qi]);
    // Slots the limit held back start as it allows.
    while (!this.stopping && this.waiting.length && this.started < this.allowed) {
      const [qi, slot] = this.waiting.shift()!;
      this.issue(qi, slot);
    }
    for (const q of this.queues) q.publish();
    return n;
  }

  stop(): void {
    this.stopping = true;
  }

  limit(started: number): void {
    this.allowed = started;
  }

  get idle(): number {
    return this.waiting.length;
  }

  /** Errors and verify's counts stay: a failure during the ramp is a failure of the run. */
  resetCounts(): void {
    for (const d of [this.c.read, this.c.write, this.c.trim]) d.ios = d.bytes = d.latNs = 0;
    for (const h of this.hist) h.reset();
  }

  firstError(): FirstError | undefined {
    return this.first;
  }

  get outstanding(): number {
    let n = 0;
    for (const q of this.queues) n += q.outstanding;
    return n;
  }

  arm(): boolean {
    let ready = false;
    for (const q of this.queues) ready = q.arm() || ready;
    return ready;
  }

  disarm(): void {
    for (const q of this.queues) q.disarm();
  }

  counts(): EngineCounts {
    return { ...this.c, read: { ...this.c.read }, write: { ...this.c.write }, trim: { ...this.c.trim }, kicks: this.queues.reduce((s, q) => s + q.kicks, 0) };
  }

  histograms(): [Histogram, Histogram, Histogram] {
    return this.hist;
  }
}
