import { nodeFileOps, type FileOps } from "../../src/worker/file-io.js";
import { LocalWorker } from "../../src/vhost/local-worker.js";
import type { VhostProcessOptions } from "../../src/vhost/process.js";

/** File operations that wait at a gate until released, to hold requests in flight. */
export class GatedFileOps implements FileOps {
  private waiting: (() => void)[] = [];
  held = 0;
  closed = true;
  constructor(private readonly inner: FileOps = nodeFileOps) {}
  private async gate(): Promise<void> {
    if (!this.closed) return;
    this.held++;
    await new Promise<void>((r) => this.waiting.push(r));
    this.held--;
  }
  /** Lets every held and future operation through. */
  open(): void {
    this.closed = false;
    for (const r of this.waiting.splice(0)) r();
  }
  readv = async (fd: number, v: Uint8Array[], p: number) => (await this.gate(), this.inner.readv(fd, v, p));
  writev = async (fd: number, v: Uint8Array[], p: number) => (await this.gate(), this.inner.writev(fd, v, p));
  fdatasync = async (fd: number) => (await this.gate(), this.inner.fdatasync(fd));
}

/** Process options whose local workers use ops for the file backstore. */
export function withFileOps(ops: FileOps): VhostProcessOptions {
  return { createWorker: (id, shm) => new LocalWorker(id, shm, { fileOps: ops }) };
}

/** Resolves once cond() holds (polled every millisecond), or rejects after ms. */
export async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not reached");
    await new Promise((r) => setTimeout(r, 1));
  }
}
