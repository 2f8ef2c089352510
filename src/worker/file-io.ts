import { fdatasync, readv, writev } from "node:fs";
import { promisify } from "node:util";

const readvP = promisify(readv);
const writevP = promisify(writev);
const fdatasyncP = promisify(fdatasync);

/** Asynchronous operations of the in-flight table (assembly/scsi/inflight.ts IO_*). */
export const IO_READ = 1;
export const IO_WRITE = 2;
export const IO_FLUSH = 3;
export const IO_WRITE_SAME = 4;
export const IO_COMPARE = 5;
/** Results. */
export const IO_OK = 0;
export const IO_ERROR = 1;
export const IO_MISCOMPARE = 2;

export interface IoResult {
  result: number;
  /** IO_MISCOMPARE: offset of the first differing byte. */
  info: number;
}

/** The file operations the file backstore needs; tests substitute failing or short ones. */
export interface FileOps {
  readv(fd: number, views: Uint8Array[], position: number): Promise<number>;
  writev(fd: number, views: Uint8Array[], position: number): Promise<number>;
  fdatasync(fd: number): Promise<void>;
}

export const nodeFileOps: FileOps = {
  readv: async (fd, views, pos) => (await readvP(fd, views, pos)).bytesRead,
  writev: async (fd, views, pos) => (await writevP(fd, views, pos)).bytesWritten,
  fdatasync: (fd) => fdatasyncP(fd),
};

/** The views still to transfer after `done` bytes of `views` went through. */
function rest(views: Uint8Array[], done: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const v of views) {
    if (done >= v.length) {
      done -= v.length;
      continue;
    }
    out.push(done > 0 ? v.subarray(done) : v);
    done = 0;
  }
  return out;
}

/**
 * Moves all of views at position, continuing after short transfers; a transfer of 0 bytes before
 * the end (end of file, or a device that makes no progress) is an error.
 */
async function transferAll(op: (fd: number, v: Uint8Array[], p: number) => Promise<number>, fd: number, views: Uint8Array[], position: number): Promise<void> {
  const total = views.reduce((s, v) => s + v.length, 0);
  let done = 0;
  while (done < total) {
    const n = await op(fd, rest(views, done), position + done);
    if (n <= 0) throw new Error(`short transfer: ${done} of ${total} bytes`);
    done += n;
  }
}

const ZERO_CHUNK = new Uint8Array(1 << 20);

/** Runs one file-backstore operation; I/O failures become IO_ERROR, never exceptions. */
export async function runFileIo(ops: FileOps, fd: number, op: number, offset: number, length: number, views: Uint8Array[]): Promise<IoResult> {
  try {
    switch (op) {
      case IO_READ:
        await transferAll(ops.readv, fd, views, offset);
        return { result: IO_OK, info: 0 };
      case IO_WRITE:
        await transferAll(ops.writev, fd, views, offset);
        return { result: IO_OK, info: 0 };
      case IO_FLUSH:
        await ops.fdatasync(fd);
        return { result: IO_OK, info: 0 };
      case IO_WRITE_SAME: {
        // One block repeated over the range (no data: zeroes), written a megabyte at a time.
        const block = views.length ? Buffer.concat(views) : undefined;
        const chunk = block ? Buffer.alloc(Math.min(length, Math.max(block.length, (1 << 20) - ((1 << 20) % block.length))), block) : ZERO_CHUNK;
        for (let at = 0; at < length; at += chunk.length) {
          await transferAll(ops.writev, fd, [chunk.subarray(0, Math.min(chunk.length, length - at))], offset + at);
        }
        return { result: IO_OK, info: 0 };
      }
      case IO_COMPARE: {
        const medium = new Uint8Array(length);
        await transferAll(ops.readv, fd, [medium], offset);
        let at = 0;
        for (const v of views) {
          for (let k = 0; k < v.length; k++, at++) if (v[k] !== medium[at]) return { result: IO_MISCOMPARE, info: at };
        }
        return { result: IO_OK, info: 0 };
      }
    }
    return { result: IO_ERROR, info: 0 };
  } catch {
    return { result: IO_ERROR, info: 0 };
  }
}
