// The yardstick for the OPFS backstore, in a browser: the same reads or writes as the run, on the
// same file and region, by one worker thread in a loop of synchronous access-handle calls
// (what the browser itself can do, as the fs loop is for a file in Node). Started by the demo
// page after the run's LUN let go of the file; it says its IOPS, or why it could not run.
import { platform } from "#platform";

/** What the loop is started with. */
export interface OpfsLoopInit {
  path: string;
  bs: number;
  write: boolean;
  random: boolean;
  offset: number;
  bytes: number;
  ms: number;
}

interface Handle {
  read(v: ArrayBufferView, o: { at: number }): number;
  write(v: ArrayBufferView, o: { at: number }): number;
  close(): void;
}
interface Dir {
  getDirectoryHandle(n: string): Promise<Dir>;
  getFileHandle(n: string): Promise<{ createSyncAccessHandle(): Promise<Handle> }>;
}

const d = await platform.threadData<OpfsLoopInit>();
try {
  const parts = d.path.split("/").filter(Boolean);
  let dir = (await (navigator.storage as unknown as { getDirectory(): Promise<Dir> }).getDirectory()) as Dir;
  for (const p of parts.slice(0, -1)) dir = await dir.getDirectoryHandle(p);
  const h = await (await dir.getFileHandle(parts.at(-1)!)).createSyncAccessHandle();
  const buf = new Uint8Array(d.bs);
  const blocks = Math.floor(d.bytes / d.bs);
  const t0 = performance.now();
  let n = 0;
  for (;;) {
    const b = d.random ? (Math.imul(n + 1, 2654435761) >>> 0) % blocks : n % blocks;
    const at = d.offset + b * d.bs;
    if (d.write) h.write(buf, { at });
    else h.read(buf, { at });
    n++;
    if ((n & 255) === 0 && performance.now() - t0 > d.ms) break;
  }
  const iops = n / ((performance.now() - t0) / 1000);
  h.close();
  platform.postToParent({ iops });
} catch (e) {
  platform.postToParent({ missing: (e as Error).message });
}
