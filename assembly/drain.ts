// The device's request loop over one queue, as the kernel's vhost handle_vq functions run it:
// disable notifications, pop chains and hand each to the device's handler, on an empty ring
// re-enable notifications and look once more, stop after `weight` requests, then publish the
// used entries and decide on one interrupt for the batch. Every EARLY_BATCH requests, or once
// their data reaches EARLY_BYTES, the used entries are published early, and an event-idx driver
// waiting for an interrupt gets it then (as QEMU notifies per completion), not only once the
// whole batch is done.
import { DRAIN_ERROR, DRAIN_MORE, DRAIN_SIGNAL, DRAIN_STALLED, DRAIN_USED } from "./defs";
import { chain_iov } from "./instance";
import { copies_pending } from "./copies";
import { IoVecArray } from "./iovec";
import { vq_pop_chain } from "./chain";
import { VirtQueue, VQ_NO_HEAD, vq_add_used, vq_disable_notify, vq_enable_notify, vq_flush_used, vq_log_write, vq_publish_early } from "./queue";
import { CTX_ABORTED, CTX_SUBMITTED, IoCompletionQueue, IoCtx, IoCtxTable, cq_consume, cq_peek, ctx_at, ctx_release } from "./ioring";

/** Requests between early publications of the used ring (a power of two). */
const EARLY_BATCH: u32 = 8;
/**
 * Data bytes after which the used ring is published early, whatever the count: about 50 µs of
 * copying, inside a polling guest's window. Up to 128 KiB requests the count comes first; eight
 * 1 MiB reads held back together left a guest asleep and the ring empty while it woke.
 */
const EARLY_BYTES: usize = 1 << 20;

/** A handler's answer when the request completes later (an asynchronous backstore holds it). */
export const REQUEST_PENDING: i64 = -1;

/**
 * Drains vq through device `dev`; returns DRAIN_* bits. One call serves up to weight requests.
 * With `polling`, an empty ring leaves notifications disabled (the caller polls again soon).
 * D is a device type (monomorphized, so the per-request call is direct) with a method
 * `handle(vq: VirtQueue, head: u32, iov: IoVecArray): i64` that reads the request from iov's
 * readable part, writes the reply into its writable part and returns the bytes written, or
 * REQUEST_PENDING.
 */
export function vq_drain<D>(vq: VirtQueue, iov: IoVecArray, dev: D, weight: u32, polling: bool = false): u32 {
  let flags: u32 = 0;
  let served: u32 = 0;
  let added = false;
  const errors = vq.error_count;
  vq_disable_notify(vq);
  while (true) {
    const head = vq_pop_chain(vq, iov);
    if (head == VQ_NO_HEAD) {
      // The entry stays on the ring; let the driver's next kick through to retry it.
      flags |= DRAIN_STALLED;
      vq_enable_notify(vq);
      break;
    }
    if (head == vq.num) {
      // A busy-polling worker keeps kicks off; it re-enables them before it sleeps.
      if (polling || !vq_enable_notify(vq)) break;
      vq_disable_notify(vq);
      continue;
    }
    const written = dev.handle(vq, head, iov);
    if (written == REQUEST_PENDING) {
      vq.inflight++;
    } else {
      vq_log_write(vq, iov);
      vq_add_used(vq, head, <u32>written);
      added = true;
      if ((served & (EARLY_BATCH - 1)) == EARLY_BATCH - 1 || copies_pending() >= EARLY_BYTES) {
        // A driver that sleeps until used->idx passes used_event would otherwise wait for the
        // whole batch, and the ring run dry while it wakes: end the drain here so that the
        // caller signals, and comes back for the rest.
        const published = vq_publish_early(vq);
        if ((published & DRAIN_SIGNAL) != 0) {
          flags |= published | DRAIN_MORE;
          added = false;
          break;
        }
      }
    }
    if (++served >= weight) {
      flags |= DRAIN_MORE;
      break;
    }
  }
  if (added) flags |= vq_flush_used(vq);
  // Every recorded error is reported (the kernel's vq_err signals the err eventfd each time),
  // also those of requests that were answered and consumed (BadRequest).
  if (vq.error_count != errors) flags |= DRAIN_ERROR;
  return flags;
}

/**
 * Answers the request of context x (a completion handler's last step): `len` bytes were written
 * into its chain; the in-flight count of its owner at `ownerInflight` and the queue's go down,
 * the context is freed, the chain's pages logged (while logging) and the used element added.
 */
export function ctx_answer(vq: VirtQueue, t: IoCtxTable, x: IoCtx, ownerInflight: usize, len: u32): void {
  const head = x.head;
  const chain = x.chain();
  atomic.sub<u32>(ownerInflight, 1);
  vq.inflight--;
  ctx_release(t, x);
  vq_log_write(vq, chain);
  vq_add_used(vq, head, len);
}

/**
 * Reaps the completions backstores posted on vq's completion queue (ioring.ts); returns how many
 * requests were answered (their used elements added, not yet published). D is the device type's
 * completion handler (monomorphized): `complete(vq, table, ctx, result): bool` turns a context's
 * completion into its answer and returns true, or posts its next step and returns false.
 */
export function vq_reap<D>(vq: VirtQueue): u32 {
  const t = changetype<IoCtxTable>(<usize>vq.private_data);
  if (changetype<usize>(t) == 0) return 0;
  const q = changetype<IoCompletionQueue>(<usize>t.cq);
  const handler = changetype<D>(0);
  let answered: u32 = 0;
  while (true) {
    const cell = cq_peek(q);
    if (cell == 0) break;
    const index = load<u32>(cell, 4);
    const result = load<i32>(cell, 8);
    cq_consume(q);
    // A completion names a context of this table; anything else is not ours to touch.
    if (index >= t.capacity) continue;
    const x = ctx_at(t, index);
    const state = atomic.load<u32>(changetype<usize>(x));
    if (state != CTX_SUBMITTED && state != CTX_ABORTED) continue;
    if (handler.complete(vq, t, x, result)) answered++;
  }
  return answered;
}

/**
 * One pass over a request queue of device dev: answers the requests its backstores completed
 * (vq_reap<C>), then drains new ones (vq_drain<D>); returns DRAIN_* bits.
 */
export function vq_serve<D, C>(vq: VirtQueue, dev: D, weight: u32, polling: bool): u32 {
  const reaped = vq_reap<C>(vq);
  const flags = vq_drain<D>(vq, chain_iov(), dev, weight, polling);
  return reaped != 0 && (flags & DRAIN_USED) == 0 ? flags | vq_flush_used(vq) : flags;
}

/** Answers the completed requests of a request queue no longer drained (being detached, or stalled). */
export function vq_serve_completions<C>(vq: VirtQueue): u32 {
  return vq_reap<C>(vq) != 0 ? vq_flush_used(vq) : 0;
}
