// SCSI sense data: keys, additional sense codes by name, and a decoder for fixed (70h/71h) and
// descriptor (72h/73h) formats (SPC-5 4.4).

export const SENSE_KEYS = [
  "NO SENSE",
  "RECOVERED ERROR",
  "NOT READY",
  "MEDIUM ERROR",
  "HARDWARE ERROR",
  "ILLEGAL REQUEST",
  "UNIT ATTENTION",
  "DATA PROTECT",
  "BLANK CHECK",
  "VENDOR SPECIFIC",
  "COPY ABORTED",
  "ABORTED COMMAND",
  "RESERVED",
  "VOLUME OVERFLOW",
  "MISCOMPARE",
  "COMPLETED",
] as const;

export const SenseKey = {
  NO_SENSE: 0x0,
  NOT_READY: 0x2,
  MEDIUM_ERROR: 0x3,
  HARDWARE_ERROR: 0x4,
  ILLEGAL_REQUEST: 0x5,
  UNIT_ATTENTION: 0x6,
  DATA_PROTECT: 0x7,
  ABORTED_COMMAND: 0xb,
  MISCOMPARE: 0xe,
} as const;

/** The additional sense codes this target reports, keyed by (asc << 8) | ascq. */
export const ASC_NAMES: Record<number, string> = {
  0x0000: "NO ADDITIONAL SENSE INFORMATION",
  0x0402: "LOGICAL UNIT NOT READY, INITIALIZING COMMAND REQUIRED",
  0x0c00: "WRITE ERROR",
  0x1100: "UNRECOVERED READ ERROR",
  0x1a00: "PARAMETER LIST LENGTH ERROR",
  0x1d00: "MISCOMPARE DURING VERIFY OPERATION",
  0x2000: "INVALID COMMAND OPERATION CODE",
  0x2100: "LOGICAL BLOCK ADDRESS OUT OF RANGE",
  0x2400: "INVALID FIELD IN CDB",
  0x2500: "LOGICAL UNIT NOT SUPPORTED",
  0x2600: "INVALID FIELD IN PARAMETER LIST",
  0x2700: "WRITE PROTECTED",
  0x2707: "SPACE ALLOCATION FAILED WRITE PROTECT",
  0x2900: "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED",
  0x2903: "BUS DEVICE RESET FUNCTION OCCURRED",
  0x2907: "I_T NEXUS LOSS OCCURRED",
  0x2a09: "CAPACITY DATA HAS CHANGED",
  0x3900: "SAVING PARAMETERS NOT SUPPORTED",
  0x3f0e: "REPORTED LUNS DATA HAS CHANGED",
  0x5302: "MEDIUM REMOVAL PREVENTED",
};

export interface SenseInfo {
  /** 0x70/0x71 fixed, 0x72/0x73 descriptor. */
  responseCode: number;
  descriptor: boolean;
  key: number;
  keyName: string;
  asc: number;
  ascq: number;
  ascName: string;
  /** Sense-key-specific field pointer, when SKSV is set. */
  fieldPointer?: { inCdb: boolean; byte: number; bit?: number };
  /** The INFORMATION field, when valid. */
  information?: bigint;
}

/** Decodes sense data; undefined when there is none or it is not in a format it knows. */
export function decodeSense(s: Uint8Array): SenseInfo | undefined {
  if (s.length < 8) return undefined;
  const rc = s[0] & 0x7f;
  const dv = new DataView(s.buffer, s.byteOffset, s.byteLength);
  let key: number, asc: number, ascq: number;
  let sks: Uint8Array | undefined;
  let information: bigint | undefined;
  if (rc === 0x70 || rc === 0x71) {
    if (s.length < 14) return undefined;
    key = s[2] & 0x0f;
    asc = s[12];
    ascq = s[13];
    if (s[0] & 0x80) information = BigInt(dv.getUint32(3));
    if (s.length >= 18 && s[15] & 0x80) sks = s.subarray(15, 18);
  } else if (rc === 0x72 || rc === 0x73) {
    key = s[1] & 0x0f;
    asc = s[2];
    ascq = s[3];
    const end = Math.min(s.length, 8 + s[7]);
    for (let p = 8; p + 2 <= end; p += 2 + s[p + 1]) {
      if (s[p] === 0x00 && s[p + 2] & 0x80) information = dv.getBigUint64(p + 4);
      if (s[p] === 0x02 && s[p + 4] & 0x80) sks = s.subarray(p + 4, p + 7);
    }
  } else {
    return undefined;
  }
  const code = (asc << 8) | ascq;
  return {
    responseCode: rc,
    descriptor: rc >= 0x72,
    key,
    keyName: SENSE_KEYS[key],
    asc,
    ascq,
    ascName: ASC_NAMES[code] ?? `ASC ${asc.toString(16).padStart(2, "0")}h ASCQ ${ascq.toString(16).padStart(2, "0")}h`,
    fieldPointer: sks && {
      inCdb: (sks[0] & 0x40) !== 0,
      byte: (sks[1] << 8) | sks[2],
      bit: sks[0] & 0x08 ? sks[0] & 7 : undefined,
    },
    information,
  };
}
