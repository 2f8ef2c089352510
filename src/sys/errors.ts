/** Linux errno values the vhost control plane reports (asm-generic/errno-base.h, errno.h). */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ENOTTY: 25,
  ENOSPC: 28,
  EOVERFLOW: 75,
  EOPNOTSUPP: 95,
  ENOBUFS: 105,
} as const;

export type ErrnoCode = keyof typeof Errno;

/** An ioctl failure: `errno` is the number the kernel returns negated, `code` its name. */
export class VhostError extends Error {
  readonly errno: number;
  constructor(
    readonly code: ErrnoCode,
    message: string,
  ) {
    super(`${code}: ${message}`);
    this.name = "VhostError";
    this.errno = Errno[code];
  }
}
