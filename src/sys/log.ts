import { platform } from "#platform";

/**
 * The project's diagnostic log (queue errors, worker failures, backstore errors): silent unless
 * enabled (`NODE_DEBUG=vhost-scsi` in Node, `globalThis.VHOST_SCSI_DEBUG = true` in a browser),
 * then one line per event on stderr or the console, as the kernel's pr_debug.
 */
export const log = platform.debugLog;
