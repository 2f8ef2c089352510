// The LUN of a run on a file backstore, in Node: the file as it is, or laid out (sparse) when it
// is not there yet, at the size the jobs give, as fio lays out a job's file and says so.
import { closeSync, constants, existsSync, ftruncateSync, openSync } from "node:fs";
import type { LunConfig } from "../src/target/tpg.js";
import type { FioOptions } from "./options.js";
import { bytesNeeded, fmtMiB, lunFor, RunError } from "./region.js";

/** lunFor(), with a missing file laid out first (a file is never grown or made without a size given). */
export function lunOrFile(jobs: FioOptions[]): { lun: LunConfig; laidOut?: string } {
  const made = lunFor(jobs);
  const b = jobs[0].backstore;
  if (b.backstore !== "file") return made;
  const path = b.path as string;
  if (existsSync(path)) return made;
  const unsized = jobs.find((j) => !(j.size && "bytes" in j.size && "bytes" in j.offset));
  if (unsized) throw new RunError(`${path} does not exist: give --size (and --offset) in bytes to lay it out`);
  if (made.lun.readOnly) throw new RunError(`${path} does not exist, and job ${jobs[0].name} only reads it: there is nothing to read`);
  const bytes = Math.max(...jobs.map((j) => bytesNeeded(j, 0)));
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o644);
  } catch (e) {
    throw new RunError(`cannot lay out ${path}: ${(e as Error).message}`);
  }
  try {
    ftruncateSync(fd, bytes);
  } finally {
    closeSync(fd);
  }
  return { ...made, laidOut: `Laying out IO file ${path} (${fmtMiB(bytes)}, sparse)` };
}
