// SCSI and virtio-scsi constants: names from include/uapi/linux/virtio_scsi.h, SPC-5 and SBC-4
// (operation codes, status, sense keys, additional sense codes).

// ---- virtio-scsi (VIRTIO 1.2, 5.6) ----
export const VIRTIO_SCSI_CDB_SIZE: u32 = 32;
export const VIRTIO_SCSI_SENSE_SIZE: u32 = 96;
/** sizeof(struct virtio_scsi_cmd_req), sizeof(struct virtio_scsi_cmd_req_pi). */
export const CMD_REQ_SIZE: u32 = 51;
export const CMD_REQ_PI_SIZE: u32 = 59;
/** offsetof(..., cdb) in struct virtio_scsi_cmd_req and struct virtio_scsi_cmd_req_pi. */
export const CMD_REQ_CDB_OFF: usize = 19;
export const CMD_REQ_PI_CDB_OFF: usize = 27;
/** sizeof(struct virtio_scsi_cmd_resp). */
export const CMD_RESP_SIZE: u32 = 108;
/** offsetof(struct virtio_scsi_cmd_resp, sense): sense_len, resid, status_qualifier, status, response come first. */
export const CMD_RESP_SENSE_OFF: u32 = 12;
/** sizeof(struct virtio_scsi_ctrl_tmf_req), _resp; _an_req, _an_resp; struct virtio_scsi_event. */
export const CTRL_TMF_REQ_SIZE: u32 = 24;
export const CTRL_TMF_RESP_SIZE: u32 = 1;
export const CTRL_AN_REQ_SIZE: u32 = 16;
export const CTRL_AN_RESP_SIZE: u32 = 5;
export const EVENT_SIZE: u32 = 16;

export const VIRTIO_SCSI_S_OK: u8 = 0;
export const VIRTIO_SCSI_S_FUNCTION_COMPLETE: u8 = 0;
export const VIRTIO_SCSI_S_OVERRUN: u8 = 1;
export const VIRTIO_SCSI_S_ABORTED: u8 = 2;
export const VIRTIO_SCSI_S_BAD_TARGET: u8 = 3;
export const VIRTIO_SCSI_S_RESET: u8 = 4;
export const VIRTIO_SCSI_S_BUSY: u8 = 5;
export const VIRTIO_SCSI_S_TRANSPORT_FAILURE: u8 = 6;
export const VIRTIO_SCSI_S_TARGET_FAILURE: u8 = 7;
export const VIRTIO_SCSI_S_NEXUS_FAILURE: u8 = 8;
export const VIRTIO_SCSI_S_FAILURE: u8 = 9;
export const VIRTIO_SCSI_S_FUNCTION_SUCCEEDED: u8 = 10;
export const VIRTIO_SCSI_S_FUNCTION_REJECTED: u8 = 11;
export const VIRTIO_SCSI_S_INCORRECT_LUN: u8 = 12;

export const VIRTIO_SCSI_T_TMF: u32 = 0;
export const VIRTIO_SCSI_T_AN_QUERY: u32 = 1;
export const VIRTIO_SCSI_T_AN_SUBSCRIBE: u32 = 2;

export const VIRTIO_SCSI_T_TMF_ABORT_TASK: u32 = 0;
export const VIRTIO_SCSI_T_TMF_ABORT_TASK_SET: u32 = 1;
export const VIRTIO_SCSI_T_TMF_CLEAR_ACA: u32 = 2;
export const VIRTIO_SCSI_T_TMF_CLEAR_TASK_SET: u32 = 3;
export const VIRTIO_SCSI_T_TMF_I_T_NEXUS_RESET: u32 = 4;
export const VIRTIO_SCSI_T_TMF_LOGICAL_UNIT_RESET: u32 = 5;
export const VIRTIO_SCSI_T_TMF_QUERY_TASK: u32 = 6;
export const VIRTIO_SCSI_T_TMF_QUERY_TASK_SET: u32 = 7;

export const VIRTIO_SCSI_T_EVENTS_MISSED: u32 = 0x80000000;
export const VIRTIO_SCSI_T_NO_EVENT: u32 = 0;
/** The first request queue's vring index (VIRTIO 1.2, 5.6.2: control 0, event 1, requests from 2). */
export const VIRTIO_SCSI_VQ_REQUEST: u32 = 2;

// ---- SAM-5 status ----
export const SAM_STAT_GOOD: u8 = 0x00;
export const SAM_STAT_CHECK_CONDITION: u8 = 0x02;
export const SAM_STAT_BUSY: u8 = 0x08;
export const SAM_STAT_RESERVATION_CONFLICT: u8 = 0x18;
export const SAM_STAT_TASK_SET_FULL: u8 = 0x28;

// ---- SPC-5 sense keys ----
export const NO_SENSE: u8 = 0x0;
export const NOT_READY: u8 = 0x2;
export const MEDIUM_ERROR: u8 = 0x3;
export const HARDWARE_ERROR: u8 = 0x4;
export const ILLEGAL_REQUEST: u8 = 0x5;
export const UNIT_ATTENTION: u8 = 0x6;
export const DATA_PROTECT: u8 = 0x7;
export const ABORTED_COMMAND: u8 = 0xb;
export const MISCOMPARE: u8 = 0xe;

// ---- additional sense code and qualifier, packed as (asc << 8) | ascq ----
export const ASC_NONE: u32 = 0x0000;
export const ASC_LUN_NOT_READY_INIT_REQUIRED: u32 = 0x0402; // LOGICAL UNIT NOT READY, INITIALIZING COMMAND REQUIRED
export const ASC_WRITE_ERROR: u32 = 0x0c00;
export const ASC_UNRECOVERED_READ_ERROR: u32 = 0x1100;
export const ASC_MISCOMPARE_DURING_VERIFY: u32 = 0x1d00;
export const ASC_PARAMETER_LIST_LENGTH_ERROR: u32 = 0x1a00;
export const ASC_INVALID_COMMAND_OPERATION_CODE: u32 = 0x2000;
export const ASC_LBA_OUT_OF_RANGE: u32 = 0x2100;
export const ASC_INVALID_FIELD_IN_CDB: u32 = 0x2400;
export const ASC_LOGICAL_UNIT_NOT_SUPPORTED: u32 = 0x2500;
export const ASC_INVALID_FIELD_IN_PARAMETER_LIST: u32 = 0x2600;
export const ASC_WRITE_PROTECTED: u32 = 0x2700;
export const ASC_SPACE_ALLOCATION_FAILED: u32 = 0x2707; // SPACE ALLOCATION FAILED WRITE PROTECT
export const ASC_POWER_ON_RESET: u32 = 0x2900; // POWER ON, RESET, OR BUS DEVICE RESET OCCURRED
export const ASC_BUS_DEVICE_RESET_FUNCTION: u32 = 0x2903;
export const ASC_I_T_NEXUS_LOSS: u32 = 0x2907;
export const ASC_CAPACITY_DATA_CHANGED: u32 = 0x2a09;
export const ASC_MODE_PARAMETERS_CHANGED: u32 = 0x2a01;
export const ASC_RESERVATIONS_PREEMPTED: u32 = 0x2a03;
export const ASC_RESERVATIONS_RELEASED: u32 = 0x2a04;
export const ASC_REGISTRATIONS_PREEMPTED: u32 = 0x2a05;
export const ASC_INVALID_RELEASE_OF_PERSISTENT_RESERVATION: u32 = 0x2604;
export const ASC_SAVING_PARAMETERS_NOT_SUPPORTED: u32 = 0x3900;
export const ASC_REPORTED_LUNS_DATA_CHANGED: u32 = 0x3f0e;
export const ASC_MEDIUM_REMOVAL_PREVENTED: u32 = 0x5302;

// ---- operation codes (SPC-5, SBC-4) ----
export const TEST_UNIT_READY: u8 = 0x00;
export const REQUEST_SENSE: u8 = 0x03;
export const READ_6: u8 = 0x08;
export const WRITE_6: u8 = 0x0a;
export const INQUIRY: u8 = 0x12;
export const MODE_SELECT_6: u8 = 0x15;
export const RESERVE_6: u8 = 0x16;
export const RELEASE_6: u8 = 0x17;
export const MODE_SENSE_6: u8 = 0x1a;
export const START_STOP_UNIT: u8 = 0x1b;
export const PREVENT_ALLOW_MEDIUM_REMOVAL: u8 = 0x1e;
export const READ_CAPACITY_10: u8 = 0x25;
export const READ_10: u8 = 0x28;
export const WRITE_10: u8 = 0x2a;
export const WRITE_VERIFY_10: u8 = 0x2e;
export const VERIFY_10: u8 = 0x2f;
export const SYNCHRONIZE_CACHE_10: u8 = 0x35;
export const WRITE_SAME_10: u8 = 0x41;
export const UNMAP: u8 = 0x42;
export const MODE_SELECT_10: u8 = 0x55;
export const RESERVE_10: u8 = 0x56;
export const RELEASE_10: u8 = 0x57;
export const MODE_SENSE_10: u8 = 0x5a;
export const PERSISTENT_RESERVE_IN: u8 = 0x5e;
export const PERSISTENT_RESERVE_OUT: u8 = 0x5f;
export const READ_16: u8 = 0x88;
export const COMPARE_AND_WRITE: u8 = 0x89;
/** MAXIMUM COMPARE AND WRITE LENGTH (Block Limits VPD, SBC-4 6.6.4): blocks per COMPARE AND WRITE. */
export const CAW_MAX_BLOCKS: u32 = 1;
export const WRITE_16: u8 = 0x8a;
export const WRITE_VERIFY_16: u8 = 0x8e;
export const VERIFY_16: u8 = 0x8f;
export const SYNCHRONIZE_CACHE_16: u8 = 0x91;
export const WRITE_SAME_16: u8 = 0x93;
export const SERVICE_ACTION_IN_16: u8 = 0x9e;
export const REPORT_LUNS: u8 = 0xa0;
export const MAINTENANCE_IN: u8 = 0xa3;
export const VARIABLE_LENGTH_CMD: u8 = 0x7f; // SPC-5 4.2.3
export const READ_12: u8 = 0xa8;
export const WRITE_12: u8 = 0xaa;

/** Service actions. */
export const SAI_READ_CAPACITY_16: u8 = 0x10;
export const MI_REPORT_SUPPORTED_OPERATION_CODES: u8 = 0x0c;
/** PERSISTENT RESERVE IN service actions (SPC-4 6.15.1). */
export const PRI_READ_KEYS: u32 = 0x00;
export const PRI_READ_RESERVATION: u32 = 0x01;
export const PRI_REPORT_CAPABILITIES: u32 = 0x02;
export const PRI_READ_FULL_STATUS: u32 = 0x03;
/** PERSISTENT RESERVE OUT service actions (SPC-4 6.16.2). */
export const PRO_REGISTER: u32 = 0x00;
export const PRO_RESERVE: u32 = 0x01;
export const PRO_RELEASE: u32 = 0x02;
export const PRO_CLEAR: u32 = 0x03;
export const PRO_PREEMPT: u32 = 0x04;
export const PRO_PREEMPT_AND_ABORT: u32 = 0x05;
export const PRO_REGISTER_AND_IGNORE_EXISTING_KEY: u32 = 0x06;
export const PRO_REGISTER_AND_MOVE: u32 = 0x07;

/** Peripheral device type: direct access block device; qualifier 3 = no LU at this address. */
export const TYPE_DISK: u8 = 0x00;
export const PQ_NOT_CONNECTED_NO_DEVICE: u8 = 0x7f;
