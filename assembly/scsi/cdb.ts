// Decoding the fields of SCSI CDBs that more than one layer reads: the operation's kind, and a
// READ/WRITE/VERIFY CDB's LBA, transfer length and protection bits, for every CDB size (SBC-4
// 4.2.2: the group code in the opcode's top three bits gives the layout). A leaf: it knows
// bytes and opcodes only.
import { be16, be24, be32, be64 } from "./be";
import * as K from "./constants";

/** READ and WRITE of every CDB size, and WRITE AND VERIFY: the commands that move blocks. */
export function is_read_write(op: u8): bool {
  switch (op) {
    case K.READ_6: case K.READ_10: case K.READ_12: case K.READ_16:
    case K.WRITE_6: case K.WRITE_10: case K.WRITE_12: case K.WRITE_16:
    case K.WRITE_VERIFY_10: case K.WRITE_VERIFY_16:
      return true;
  }
  return false;
}

/** READ of every CDB size. */
export function is_read(op: u8): bool {
  return op == K.READ_6 || op == K.READ_10 || op == K.READ_12 || op == K.READ_16;
}

/** The LBA; 6-byte CDBs have a 21-bit one. */
@inline export function rw_lba(cdb: usize): u64 {
  const size = <u32>load<u8>(cdb) >> 5;
  if (size == 0) return <u64>(be24(cdb + 1) & 0x1fffff);
  if (size == 1 || size == 2 || size == 5) return <u64>be32(cdb + 2);
  return be64(cdb + 2);
}

/** The transfer length in blocks; in 6-byte CDBs 0 means 256. */
@inline export function rw_blocks(cdb: usize): u32 {
  const size = <u32>load<u8>(cdb) >> 5;
  if (size == 0) {
    const n = <u32>load<u8>(cdb, 4);
    return n == 0 ? 256 : n;
  }
  if (size == 1 || size == 2) return be16(cdb + 7);
  if (size == 5) return be32(cdb + 6);
  return be32(cdb + 10);
}

/** The CDB byte the transfer length starts at (a field pointer for sense data). */
export function rw_len_byte(cdb: usize): u32 {
  const size = <u32>load<u8>(cdb) >> 5;
  if (size == 0) return 4;
  if (size == 1 || size == 2) return 7;
  if (size == 5) return 6;
  return 10;
}

/**
 * Whether the CDB asks for protection information (RDPROTECT, WRPROTECT or VRPROTECT, bits 7:5
 * of byte 1; 6-byte CDBs have none), which this target does not keep.
 */
@inline export function rw_protect(cdb: usize): bool {
  return (<u32>load<u8>(cdb) >> 5) != 0 && (load<u8>(cdb, 1) & 0xe0) != 0;
}
