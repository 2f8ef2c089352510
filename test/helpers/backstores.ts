import type { IoDone, QueuedBackstore } from "../../src/backstore/backstore.js";
import { FileBackstore } from "../../src/backstore/file.js";
import type { BackstoreIo } from "../../src/backstore/ring.js";
import type { SharedMemory } from "../../src/memory/shared-memory.js";
import { openBackstore } from "#backstores";
import { truncateSync, writeFileSync } from "node:fs";

/**
 * A backstore that holds every operation at a gate while closed (requests stay in flight) and
 * passes them to the backstore it wraps once open. Served on the test's thread.
 */
export class GatedBackstore implements QueuedBackstore {
  readonly kind = "queued";
  readonly name: string;
  readonly size: number;
  readonly readOnly: boolean;
  readonly features: QueuedBackstore["features"];
  private waiting: (() => void)[] = [];
  /** Operations waiting at the gate. */
  held = 0;
  closed = true;

  constructor(readonly inner: QueuedBackstore) {
    this.name = inner.name;
    this.size = inner.size;
    this.readOnly = inner.readOnly;
    // Held operations complete after submit() returns.
    this.features = { ...inner.features, synchronous: false };
  }

  submit(batch: readonly BackstoreIo[], done: IoDone): void {
    for (const io of batch) {
      const go = () => this.inner.submit([io], done);
      if (!this.closed) {
        go();
        continue;
      }
      this.held++;
      this.waiting.push(() => {
        this.held--;
        go();
      });
    }
  }

  /** Lets every held and future operation through. */
  open(): void {
    this.closed = false;
    for (const w of this.waiting.splice(0)) w();
  }

  close(): void | Promise<void> {
    return this.inner.close();
  }
}

/** A file backstore at path behind a gate, served on this thread. */
export function gatedFile(path: string, size: number): GatedBackstore {
  return new GatedBackstore(new FileBackstore(path, { size, ioThreads: 0 }));
}

/** Resolves once cond() holds (polled every millisecond), or rejects after ms. */
export async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not reached");
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** A fresh file of `bytes` at `path`, opened as a file backstore served by the vhost workers (no I/O threads). */
export async function openFileLun(path: string, bytes: number, shm: SharedMemory): Promise<QueuedBackstore> {
  writeFileSync(path, "");
  truncateSync(path, bytes);
  const file = await openBackstore({ backstore: "file", path, ioThreads: 0 }, shm);
  if (file.kind !== "queued") throw new Error("a file backstore is queued");
  return file;
}
