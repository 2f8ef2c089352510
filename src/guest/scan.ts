import type { ScsiCommand, ScsiResult, VirtioScsiDriver } from "./scsi-driver.js";
import { inquiry, modeSense10, readCapacity16, reportLuns } from "./scsi-commands.js";
import { SenseKey } from "./sense.js";
import { SamStatus } from "./scsi-commands.js";

/** What a Linux-like scan learns about one disk. */
export interface ScannedDisk {
  target: number;
  lun: number;
  vendor: string;
  product: string;
  revision: string;
  serial: string;
  /** World-wide id from VPD 83h (naa.<hex>), as /dev/disk/by-id shows it. */
  wwid: string;
  blocks: bigint;
  blockSize: number;
  /** From READ CAPACITY(16) LBPME and VPD B2h. */
  thinProvisioned: boolean;
  /** From VPD B1h (1 = non-rotating). */
  rotational: boolean;
  /** Caching mode page WCE. */
  writeCache: boolean;
  writeProtected: boolean;
  /** VPD B0h MAXIMUM TRANSFER LENGTH, in blocks. */
  maxTransferBlocks: number;
}

const ascii = (b: Uint8Array) => new TextDecoder().decode(b).replace(/\0+$/, "");

/** Runs a command, retrying while it reports a unit attention (as scsi_execute's retries do). */
export async function commandRetryingUA(d: VirtioScsiDriver, c: ScsiCommand, tries = 8): Promise<ScsiResult> {
  for (;;) {
    const r = await d.command(c);
    if (--tries > 0 && r.status === SamStatus.CHECK_CONDITION && r.senseInfo?.key === SenseKey.UNIT_ATTENTION) continue;
    return r;
  }
}

function must(r: ScsiResult, what: string): Uint8Array {
  if (r.response !== 0 || r.status !== 0) throw new Error(`${what}: response ${r.response} status ${r.status} ${r.senseInfo?.ascName ?? ""}`);
  return r.dataIn;
}

/** The LUN numbers REPORT LUNS lists (peripheral or flat addressing). */
export async function reportLunNumbers(d: VirtioScsiDriver, target: number): Promise<number[]> {
  let alloc = 512;
  for (;;) {
    const data = must(await commandRetryingUA(d, { target, lun: 0, cdb: reportLuns(alloc), dataInLength: alloc }), "REPORT LUNS");
    const len = new DataView(data.buffer, data.byteOffset).getUint32(0);
    if (len + 8 > alloc) {
      alloc = len + 8;
      continue;
    }
    const luns: number[] = [];
    for (let at = 8; at < 8 + len; at += 8) luns.push(((data[at] & 0x3f) << 8) | data[at + 1]);
    return luns;
  }
}

/**
 * Scans a target the way Linux's SCSI midlayer and sd do: REPORT LUNS, then for each LUN
 * INQUIRY, the VPD pages (00h, 80h, 83h, B0h, B1h, B2h), READ CAPACITY(16) and MODE SENSE(10)
 * for the caching page. LUNs whose INQUIRY reports no device (qualifier 3) are skipped.
 */
export async function scanTarget(d: VirtioScsiDriver, target = d.defaultTarget): Promise<ScannedDisk[]> {
  const disks: ScannedDisk[] = [];
  for (const lun of await reportLunNumbers(d, target)) {
    const run = async (cdb: Uint8Array, len: number, what: string) => must(await commandRetryingUA(d, { target, lun, cdb, dataInLength: len }), what);
    const std = await run(inquiry(96), 96, "INQUIRY");
    if (std[0] >> 5 === 3) continue;
    const pages = await run(inquiry(255, 0x00), 255, "VPD 00h");
    const has = (p: number) => pages.subarray(4, 4 + pages[3]).includes(p);
    const serial = has(0x80) ? ascii((await run(inquiry(255, 0x80), 255, "VPD 80h")).subarray(4)) : "";
    let wwid = "";
    if (has(0x83)) {
      const p = await run(inquiry(255, 0x83), 255, "VPD 83h");
      const end = 4 + ((p[2] << 8) | p[3]);
      for (let at = 4; at + 4 <= end; at += 4 + p[at + 3]) {
        if ((p[at + 1] & 0x0f) === 3 && (p[at + 1] & 0x30) === 0) {
          wwid = `naa.${Buffer.from(p.subarray(at + 4, at + 4 + p[at + 3])).toString("hex")}`;
          break;
        }
      }
    }
    const limits = has(0xb0) ? await run(inquiry(64, 0xb0), 64, "VPD B0h") : new Uint8Array(64);
    const chars = has(0xb1) ? await run(inquiry(64, 0xb1), 64, "VPD B1h") : new Uint8Array(64);
    const cap = await run(readCapacity16(32), 32, "READ CAPACITY(16)");
    const cv = new DataView(cap.buffer, cap.byteOffset);
    const ms = await run(modeSense10(0x08, 64), 64, "MODE SENSE(10)");
    const bdl = (ms[6] << 8) | ms[7];
    disks.push({
      target,
      lun,
      vendor: ascii(std.subarray(8, 16)).trim(),
      product: ascii(std.subarray(16, 32)).trim(),
      revision: ascii(std.subarray(32, 36)).trim(),
      serial,
      wwid,
      blocks: cv.getBigUint64(0) + 1n,
      blockSize: cv.getUint32(8),
      thinProvisioned: (cap[14] & 0x80) !== 0,
      rotational: ((chars[4] << 8) | chars[5]) !== 1,
      writeCache: (ms[8 + bdl + 2] & 0x04) !== 0,
      writeProtected: (ms[3] & 0x80) !== 0,
      maxTransferBlocks: new DataView(limits.buffer, limits.byteOffset).getUint32(8),
    });
  }
  return disks;
}
