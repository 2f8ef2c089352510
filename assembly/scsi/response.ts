// The answer of a SCSI request on a virtio-scsi request queue: struct virtio_scsi_cmd_resp
// (VIRTIO 1.2, 5.6.6.1) at the start of the chain's writable part. Both the request layer
// (requests answered at once) and the command steps of backstores served elsewhere (answered
// when their completion is reaped) write it here, and nowhere else.
import { IovIter } from "../iovec";
import { scratch, zeroes } from "../instance";
import { ScsiCmd, build_sense, DIR_FROM_DEVICE, SCRATCH_RESP } from "./cmd";
import * as K from "./constants";

/**
 * Writes struct virtio_scsi_cmd_resp through cursor `resp`; returns the used length (the
 * response plus the data-in bytes). The whole struct is written, as vhost-scsi does: the sense
 * field is zeroes when there is no sense data.
 */
export function write_response(c: ScsiCmd, resp: IovIter): u32 {
  const r = scratch() + SCRATCH_RESP;
  let senseLen: u32 = 0;
  if (c.response == K.VIRTIO_SCSI_S_OK && c.status == K.SAM_STAT_CHECK_CONDITION) {
    senseLen = build_sense(c, r + K.CMD_RESP_SENSE_OFF, c.desc_sense != 0);
  }
  const resid = c.buf_len - c.done;
  store<u32>(r, senseLen);
  store<u32>(r, resid > 0xffffffff ? 0xffffffff : <u32>resid, 4);
  store<u16>(r, 0, 8); // status_qualifier
  store<u8>(r, <u8>c.status, 10);
  store<u8>(r, <u8>c.response, 11);
  resp.update(r, K.CMD_RESP_SENSE_OFF);
  resp.update(senseLen != 0 ? r + K.CMD_RESP_SENSE_OFF : zeroes(), K.VIRTIO_SCSI_SENSE_SIZE);
  return K.CMD_RESP_SIZE + (c.dir == DIR_FROM_DEVICE ? <u32>c.done : 0);
}
