// The WebAssembly load engine (assembly/guest/engine.ts, dist/guest-engine.wasm) over the shared
// memory: its state in guest RAM the main thread set aside (JobInit.engineArea), one call per
// pass; kicks go out on the queues' eventfds here, and the latency buckets become HDR
// histograms at the end.
import { platform } from "#platform";
import type { Histogram } from "hdr-histogram-js";
import { latencyHistogram } from "./job-result.js";
import { EventFd } from "../src/sys/eventfd.js";
import { polledSlotSize } from "../src/guest/polled-queue.js";
import { type EngineCounts, type FirstError, type GuestEngine, type JobInit, type Phase, jobSeed, rwPattern } from "./guest-engine.js";
import {
  ENGINE_DEVICE_BLK,
  ENGINE_DEVICE_SCSI,
  COUNTER_ERRORS,
  COUNTER_MISMATCHES,
  COUNTER_READ_BYTES,
  COUNTER_READ_IOS,
  COUNTER_READ_LAT_NS,
  COUNTER_TRIM_BYTES,
  COUNTER_TRIM_IOS,
  COUNTER_TRIM_LAT_NS,
  COUNTER_VERIFIED,
  COUNTER_WRITE_BYTES,
  COUNTER_WRITE_IOS,
  COUNTER_WRITE_LAT_NS,
  MODE_ALL_READS,
  MODE_MIXED,
  MODE_SEQUENTIAL,
  MODE_TRIM,
  MODE_VERIFY,
  type EngineExports,
} from "./engine-abi.generated.js";

const instantiate = (memory: WebAssembly.Memory) =>
  new WebAssembly.Instance(platform.wasmModule("guest-engine.wasm"), { env: { memory } }).exports as unknown as EngineExports;

/** One region of an engine area: [offset, bytes]. */
interface AreaLayout {
  job: number;
  qtab: number;
  slots: number[];
  hist: number;
  gens: number;
  busy: number;
  bytes: number;
}

/** Where an engine's state goes in its area, for these queues' depths, `blocks` blocks and verify. */
function areaLayout(e: EngineExports, depths: number[], blocks: number, verify: boolean): AreaLayout {
  const align = (n: number) => (n + 63) & ~63;
  let at = 0;
  const take = (n: number) => {
    const here = at;
    at = align(at + n);
    return here;
  };
  const job = take(e.engine_job_bytes());
  const qtab = take(depths.length * e.engine_queue_bytes());
  const slots = depths.map((d) => take(d * e.engine_slot_bytes()));
  const hist = take(3 * 4 * e.engine_hist_buckets());
  const gens = verify ? take(4 * blocks) : 0;
  const busy = verify ? take(blocks) : 0;
  return { job, qtab, slots, hist, gens, busy, bytes: at };
}

/** Bytes of guest RAM an engine needs for `blocks` blocks of verify (the main thread sets them aside before the job starts). */
export function engineAreaBytes(depths: number[], blocks: number, verify: boolean): number {
  const scratch = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  return areaLayout(instantiate(scratch), depths, blocks, verify).bytes;
}

export class WasmGuestEngine implements GuestEngine {
  private readonly e: EngineExports;
  private readonly st: number;
  private readonly kick: EventFd[];
  private readonly hist: number;
  private readonly buffer: SharedArrayBuffer;
  private kicks = 0;

  constructor(init: JobInit) {
    const o = init.opts;
    const e = (this.e = instantiate(init.memory));
    const blocks = o.verify ? Math.floor(init.regionBytes / o.bs) : 0;
    const L = areaLayout(
      e,
      init.queues.map((q) => q.depth),
      blocks,
      o.verify,
    );
    const base = init.engineArea;
    this.buffer = init.buffer;
    new Uint8Array(init.buffer, base, L.bytes).fill(0);
    this.st = base + L.job;
    this.hist = base + L.hist;
    const rw = rwPattern(o.rw);
    const mode =
      (rw.sequential ? MODE_SEQUENTIAL : 0) |
      (rw.mixed ? MODE_MIXED : 0) |
      (rw.allReads ? MODE_ALL_READS : 0) |
      (rw.trims ? MODE_TRIM : 0) |
      (o.verify ? MODE_VERIFY : 0);
    e.engine_init(
      this.st,
      o.device === "blk" ? ENGINE_DEVICE_BLK : ENGINE_DEVICE_SCSI,
      init.queues.length,
      base + L.qtab,
      o.bs,
      o.bsWrite,
      o.blockSize,
      mode,
      o.rwmixread,
      jobSeed(init.index),
      BigInt(init.regionStart),
      BigInt(init.regionBytes),
      o.verify ? base + L.gens : 0,
      o.verify ? base + L.busy : 0,
      this.hist,
    );
    init.queues.forEach((q, qi) => {
      const r = q.ring;
      e.engine_init_queue(
        this.st,
        qi,
        r.desc,
        r.avail,
        r.used,
        r.num,
        q.depth,
        BigInt(q.bufferGpa),
        q.bufferHva,
        r.availIdx,
        r.usedIdx,
        init.target,
        0,
        base + L.slots[qi],
      );
      if (!r.eventIdx) throw new RangeError("the WebAssembly engine needs VIRTIO_RING_F_EVENT_IDX");
      if (r.num < 3 * q.depth) throw new RangeError(`queue of ${r.num} cannot hold ${q.depth} three-descriptor chains`);
    });
    // The main thread laid the slots' guest RAM out with polledSlotSize(): the engine must agree.
    if (e.engine_slot_ram(Math.max(o.bs, o.bsWrite)) !== polledSlotSize(Math.max(o.bs, o.bsWrite)))
      throw new Error("guest-engine.wasm and polledSlotSize() disagree on a slot's size");
    this.kick = init.queues.map((q) => EventFd.fromHandle(q.ring.kick));
  }

  private kickQueues(mask: number): void {
    for (let qi = 0; mask !== 0; qi++, mask >>>= 1) {
      if (mask & 1) {
        this.kick[qi].write(1n);
        this.kicks++;
      }
    }
  }

  begin(phase: Phase, now: number): void {
    this.kickQueues(this.e.engine_begin(this.st, phase, now));
  }

  pass(): number {
    if (!this.e.engine_ready(this.st) && this.e.engine_idle(this.st) === 0) return 0;
    const n = this.e.engine_pass(this.st, performance.now());
    const mask = this.e.engine_kicks(this.st);
    if (mask !== 0) this.kickQueues(mask);
    return n;
  }

  stop(): void {
    this.e.engine_stop(this.st);
  }

  limit(started: number): void {
    this.e.engine_set_limit(this.st, started);
  }

  get idle(): number {
    return this.e.engine_idle(this.st);
  }

  resetCounts(): void {
    this.e.engine_reset_counts(this.st);
  }

  firstError(): FirstError | undefined {
    const f = (k: number) => this.e.engine_first_error(this.st, k);
    if (f(0) < 0) return undefined;
    return { op: (["read", "write", "trim"] as const)[f(0)], response: f(1), status: f(2), senseKey: f(3), asc: f(4), ascq: f(5), offset: f(6), length: f(7) };
  }

  get outstanding(): number {
    return this.e.engine_outstanding(this.st);
  }

  arm(): boolean {
    let ready = false;
    for (let qi = 0; qi < this.kick.length; qi++) ready = this.e.engine_arm(this.st, qi) !== 0 || ready;
    return ready;
  }

  disarm(): void {
    for (let qi = 0; qi < this.kick.length; qi++) this.e.engine_disarm(this.st, qi);
  }

  counts(): EngineCounts {
    const c = (k: number) => this.e.engine_counter(this.st, k);
    return {
      read: { ios: c(COUNTER_READ_IOS), bytes: c(COUNTER_READ_BYTES), latNs: c(COUNTER_READ_LAT_NS) },
      write: { ios: c(COUNTER_WRITE_IOS), bytes: c(COUNTER_WRITE_BYTES), latNs: c(COUNTER_WRITE_LAT_NS) },
      trim: { ios: c(COUNTER_TRIM_IOS), bytes: c(COUNTER_TRIM_BYTES), latNs: c(COUNTER_TRIM_LAT_NS) },
      errors: c(COUNTER_ERRORS),
      verified: c(COUNTER_VERIFIED),
      mismatches: c(COUNTER_MISMATCHES),
      kicks: this.kicks,
    };
  }

  histograms(): [Histogram, Histogram, Histogram] {
    const n = this.e.engine_hist_buckets();
    const counts = new Uint32Array(this.buffer, this.hist, 3 * n);
    return [0, 1, 2].map((d) => {
      const h = latencyHistogram();
      for (let b = 0; b < n; b++) {
        const k = counts[d * n + b];
        if (k) h.recordValueWithCount(Math.max(1, Math.round(this.e.engine_bucket_value(b))), k);
      }
      return h;
    }) as [Histogram, Histogram, Histogram];
  }
}
