import { expect } from "vitest";
import type { ScsiResult, ScsiCommand } from "../../src/guest/scsi-driver.js";
import type { Testbed } from "../../src/testbed.js";
import { testUnitReady } from "../../src/guest/scsi-commands.js";

/** Expects GOOD status and VIRTIO_SCSI_S_OK. */
export function expectGood(r: ScsiResult): void {
  expect({ response: r.response, status: r.status, sense: r.senseInfo?.ascName }).toEqual({ response: 0, status: 0, sense: undefined });
}

/** Expects CHECK CONDITION with sense key and ASC/ASCQ ((asc << 8) | ascq). */
export function expectSense(r: ScsiResult, key: number, asc: number, fieldPointer?: { byte: number; bit?: number; inCdb?: boolean }): void {
  expect(r.response).toBe(0);
  expect(r.status).toBe(2);
  expect({ key: r.senseInfo?.key, asc: ((r.senseInfo?.asc ?? 0) << 8) | (r.senseInfo?.ascq ?? 0) }).toEqual({ key, asc });
  if (fieldPointer) {
    expect(r.senseInfo?.fieldPointer).toEqual({ inCdb: fieldPointer.inCdb ?? true, byte: fieldPointer.byte, bit: fieldPointer.bit });
  }
}

/** Clears the power-on unit attention of each LUN (the first command after start reports it). */
export async function clearUnitAttentions(bed: Testbed, luns: number[] = [0]): Promise<void> {
  for (const lun of luns) {
    for (let i = 0; i < 8; i++) {
      const r = await bed.driver.command({ lun, cdb: testUnitReady() });
      if (r.status === 0) break;
    }
  }
}

/** Sends a command on LUN 0 of the testbed. */
export function cmd(bed: Testbed, c: Partial<ScsiCommand> & { cdb: Uint8Array }): Promise<ScsiResult> {
  return bed.driver.command({ lun: 0, ...c });
}
