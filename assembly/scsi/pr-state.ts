// A logical unit's reservation state (SPC-4 5.13): the persistent reservation's registrants,
// holder and type, and an SPC-2 RESERVE's holder. It lives in the LUN struct in shared memory,
// where every I_T nexus (every vhost-scsi device bound to the target, on any worker) reads and
// changes it under its spinlock; I_T nexus n is the device with ScsiDevice.nexus n.

/** I_T nexuses a LUN keeps state for: the vhost-scsi devices bound to its target at once. */
export const SCSI_MAX_NEXUS: u32 = 16;

/** Persistent reservation types (SPC-4 6.16.4, Table 212). */
export const PR_TYPE_WRITE_EXCLUSIVE: u32 = 1;
export const PR_TYPE_EXCLUSIVE_ACCESS: u32 = 3;
export const PR_TYPE_WRITE_EXCLUSIVE_REG_ONLY: u32 = 5;
export const PR_TYPE_EXCLUSIVE_ACCESS_REG_ONLY: u32 = 6;
export const PR_TYPE_WRITE_EXCLUSIVE_ALL_REG: u32 = 7;
export const PR_TYPE_EXCLUSIVE_ACCESS_ALL_REG: u32 = 8;

@unmanaged export class PrState {
  lock: u32;
  /** PRgeneration (SPC-4 6.15.2): counts REGISTER, CLEAR and PREEMPT that changed registrations. */
  generation: u32;
  /** Bit n: I_T nexus n is registered. */
  registered: u32;
  /** 1 + the I_T nexus holding the persistent reservation, 0 when none. */
  holder: u32;
  /** PR_TYPE_* of the reservation (while holder != 0). */
  type: u32;
  /** 1 + the I_T nexus holding an SPC-2 reservation (RESERVE(6)/(10)), 0 when none. */
  spc2: u32;
}

/** Each nexus's reservation key (u64), then each nexus's initiator SAS address (u64). */
export const PR_KEYS_OFF: usize = (offsetof<PrState>() + 7) & ~7;
const PORTS_OFF: usize = PR_KEYS_OFF + (<usize>SCSI_MAX_NEXUS << 3);

export function pr_state_size(): usize {
  return PORTS_OFF + (<usize>SCSI_MAX_NEXUS << 3);
}

/** Address of nexus n's registered reservation key. */
@inline export function pr_key(pr: PrState, n: u32): usize {
  return changetype<usize>(pr) + PR_KEYS_OFF + (<usize>n << 3);
}

/** Address of nexus n's initiator port (its SAS address, for READ FULL STATUS's TransportID). */
@inline export function pr_port(pr: PrState, n: u32): usize {
  return changetype<usize>(pr) + PORTS_OFF + (<usize>n << 3);
}

export function pr_lock(pr: PrState): void {
  const p = changetype<usize>(pr);
  while (atomic.cmpxchg<u32>(p, 0, 1) != 0) {}
}

export function pr_unlock(pr: PrState): void {
  atomic.store<u32>(changetype<usize>(pr), 0);
}

/** Whether every registrant holds the reservation (the all-registrants types). */
@inline export function pr_all_registrants(type: u32): bool {
  return type == PR_TYPE_WRITE_EXCLUSIVE_ALL_REG || type == PR_TYPE_EXCLUSIVE_ACCESS_ALL_REG;
}
