// virtio-scsi constants and wire layouts, named as in include/uapi/linux/virtio_scsi.h.
import * as abi from "../wasm/abi.generated.js";
export {
  VIRTIO_SCSI_CDB_SIZE,
  VIRTIO_SCSI_VQ_REQUEST,
  VIRTIO_SCSI_SENSE_SIZE,
  VIRTIO_SCSI_S_OK,
  VIRTIO_SCSI_S_FUNCTION_COMPLETE,
  VIRTIO_SCSI_S_OVERRUN,
  VIRTIO_SCSI_S_ABORTED,
  VIRTIO_SCSI_S_BAD_TARGET,
  VIRTIO_SCSI_S_RESET,
  VIRTIO_SCSI_S_BUSY,
  VIRTIO_SCSI_S_TRANSPORT_FAILURE,
  VIRTIO_SCSI_S_TARGET_FAILURE,
  VIRTIO_SCSI_S_NEXUS_FAILURE,
  VIRTIO_SCSI_S_FAILURE,
  VIRTIO_SCSI_S_FUNCTION_SUCCEEDED,
  VIRTIO_SCSI_S_FUNCTION_REJECTED,
  VIRTIO_SCSI_S_INCORRECT_LUN,
  VIRTIO_SCSI_T_TMF,
  VIRTIO_SCSI_T_AN_QUERY,
  VIRTIO_SCSI_T_AN_SUBSCRIBE,
  VIRTIO_SCSI_T_TMF_ABORT_TASK,
  VIRTIO_SCSI_T_TMF_ABORT_TASK_SET,
  VIRTIO_SCSI_T_TMF_CLEAR_ACA,
  VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET,
  VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET,
  VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET,
  VIRTIO_SCSI_T_TMF_QUERY_TASK,
  VIRTIO_SCSI_T_TMF_QUERY_TASK_SET,
  VIRTIO_SCSI_T_EVENTS_MISSED,
  VIRTIO_SCSI_T_NO_EVENT,
} from "../wasm/abi.generated.js";

export const VIRTIO_ID_SCSI = 8;
/** The config space's max_sectors this device offers (512-byte sectors per command, QEMU's default). */
export const VIRTIO_SCSI_MAX_SECTORS = 0xffff;

/** Feature bits (VIRTIO 1.2, 5.6.3). */
export const VIRTIO_SCSI_F_INOUT = 0;
export const VIRTIO_SCSI_F_HOTPLUG = 1;
export const VIRTIO_SCSI_F_CHANGE = 2;
export const VIRTIO_SCSI_F_T10_PI = 3;

/** Names of the response codes (FUNCTION_COMPLETE shares 0 with OK). */
export const VIRTIO_SCSI_RESPONSE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(abi)
    .filter(([name]) => name.startsWith("VIRTIO_SCSI_S_") && name !== "VIRTIO_SCSI_S_FUNCTION_COMPLETE")
    .map(([name, code]) => [code, name]),
);

/** Events (VIRTIO 1.2, 5.6.6.3). */
export const VIRTIO_SCSI_T_TRANSPORT_RESET = 1;
export const VIRTIO_SCSI_T_ASYNC_NOTIFY = 2;
export const VIRTIO_SCSI_T_PARAM_CHANGE = 3;
export const VIRTIO_SCSI_EVT_RESET_HARD = 0;
export const VIRTIO_SCSI_EVT_RESET_RESCAN = 1;
export const VIRTIO_SCSI_EVT_RESET_REMOVED = 2;

/** Task attributes. */
export const VIRTIO_SCSI_S_SIMPLE = 0;
export const VIRTIO_SCSI_S_ORDERED = 1;
export const VIRTIO_SCSI_S_HEAD = 2;
export const VIRTIO_SCSI_S_ACA = 3;

/** Sizes of the packed wire structs. */
export const VIRTIO_SCSI_CMD_REQ_SIZE = 51;
export const VIRTIO_SCSI_CMD_REQ_PI_SIZE = 59;
export const VIRTIO_SCSI_CMD_RESP_SIZE = 108;
export const VIRTIO_SCSI_CTRL_TMF_REQ_SIZE = 24;
export const VIRTIO_SCSI_CTRL_TMF_RESP_SIZE = 1;
export const VIRTIO_SCSI_CTRL_AN_REQ_SIZE = 16;
export const VIRTIO_SCSI_CTRL_AN_RESP_SIZE = 5;
export const VIRTIO_SCSI_EVENT_SIZE = 16;
export const VIRTIO_SCSI_CONFIG_SIZE = 36;

/** The 8-byte LUN field of a request, as Linux's virtio_scsi driver builds it. */
export function virtioScsiLun(target: number, lun: number): Uint8Array {
  const b = new Uint8Array(8);
  b[0] = 1;
  b[1] = target;
  b[2] = (lun >> 8) | 0x40;
  b[3] = lun & 0xff;
  return b;
}
