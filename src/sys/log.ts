import { debuglog } from "node:util";

/**
 * The project's diagnostic log (queue errors, worker failures, backstore errors): silent unless
 * `NODE_DEBUG=vhost-scsi`, then one line per event on stderr, as the kernel's pr_debug.
 */
export const log = debuglog("vhost-scsi");
