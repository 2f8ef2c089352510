#!/bin/sh
# The guest's workload (PID 1 of the initramfs): the Linux virtio_scsi and sd drivers against the
# vhost-scsi-wasm device, and its virtio_blk driver against the virtio-blk device (/dev/vda). Each check prints "=== RESULT <name> ok" or "=== RESULT <name> FAIL <why>";
# the host (scripts/guest.mjs) reads them from the serial console and answers "=== HOTPLUG?" and
# "=== UNPLUG?" by adding and removing LUN 2.
export PATH=/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
say() { echo "=== $*"; }
ok() { say "RESULT $1 ok"; }
fail() { say "RESULT $1 FAIL $2"; }
now() { cut -d' ' -f1 /proc/uptime; }
# Waits up to $2 tenths of a second for path $1 to exist (or, with $3 = gone, to vanish).
wait_for() {
  i=0
  while [ $i -lt "$2" ]; do
    if [ "$3" = gone ]; then [ -e "$1" ] || return 0; else [ -e "$1" ] && return 0; fi
    sleep 0.1
    i=$((i + 1))
  done
  return 1
}
# The sd disk of target 1, LUN $1 (the vhost-scsi device), by its SCSI address.
disk_of() {
  for d in /sys/block/sd*; do
    case "$(basename "$(readlink "$d/device")")" in *:0:1:"$1") basename "$d"; return 0 ;; esac
  done
  return 1
}
# Waits up to $2 tenths of a second for LUN $1's disk to take I/O, and prints its name: sd makes
# the scsi_disk before it reads the capacity and adds the block device, so its sysfs entry
# appearing is not enough.
wait_disk() {
  i=0
  while [ $i -lt "$2" ]; do
    d=$(disk_of "$1") && [ -b "/dev/$d" ] && [ "$(cat "/sys/block/$d/size")" != 0 ] && echo "$d" && return 0
    sleep 0.1
    i=$((i + 1))
  done
  return 1
}

say "BOOTED $(uname -r) at $(now)s"
for m in $(cat /etc/modules.order); do insmod "/lib/modules/$m.ko" || fail "insmod-$m" "exit $?"; done

# The browser demo's guest (kernel command line "vhost.demo"): LUN 0 is a 96 MiB disk kept in the
# page's Origin Private File System. The first boot makes a filesystem on its first 64 MiB and
# writes a file; every later boot finds the file and says its checksum, which must be the same.
# The last 32 MiB take the raw I/O measurements. Then a shell on the console.
if grep -q vhost.demo /proc/cmdline; then
  if A=$(wait_disk 0 300); then
    if ! mount -t ext2 "/dev/$A" /mnt 2>/dev/null; then
      mke2fs -q "/dev/$A" 65536 && mount -t ext2 "/dev/$A" /mnt && say "DEMO made a filesystem on /dev/$A (LUN 0)"
    fi
    boots=$(($(cat /mnt/boots 2>/dev/null || echo 0) + 1))
    echo $boots > /mnt/boots
    if [ -f /mnt/hello.bin ]; then
      say "DEMO FOUND $(sha256sum /mnt/hello.bin | cut -d' ' -f1) boot $boots"
    else
      dd if=/dev/urandom of=/mnt/hello.bin bs=4k count=16 2>/dev/null
      say "DEMO WROTE $(sha256sum /mnt/hello.bin | cut -d' ' -f1) boot $boots"
    fi
    sync
    # The guest's own view of the disk's speed (the emulated CPU bounds it), as the full workload measures it.
    t0=$(now); dd if="/dev/$A" of=/dev/null bs=4k skip=16384 count=2048 iflag=direct 2>/dev/null; t1=$(now)
    say "IO virtio-scsi read 2048x4k seconds $t0 $t1"
    t0=$(now); dd if=/dev/zero of="/dev/$A" bs=4k seek=16384 count=256 oflag=direct 2>/dev/null; t1=$(now)
    say "IO virtio-scsi write 256x4k seconds $t0 $t1"
    sync
    say "DEMO READY: /mnt is LUN 0, kept in the browser; type commands here"
  else
    say "DEMO FAIL LUN 0 did not appear"
  fi
  cd /mnt 2>/dev/null
  exec sh
fi
# Crash consistency (kernel command line "vhost.crash=N", scripts/guest-crash.mjs): LUN 0 holds an
# ext4 filesystem with a journal, made on the host. N rounds of: a file written and fsynced, which
# the host then marks as durable ("=== DURABLE <name> <sha256>"); beside it files written,
# renamed and deleted without fsync. The host cuts power at every point of the recorded writes.
n=$(sed -n 's/.*vhost\.crash=\([0-9]*\).*/\1/p' /proc/cmdline)
if [ -n "$n" ]; then
  A=$(wait_disk 0 300) || fail crash "LUN 0 did not appear"
  mount -t ext4 "/dev/$A" /mnt || fail crash "mount failed"
  i=1
  while [ $i -le "$n" ]; do
    dd if=/dev/urandom of=/mnt/t$i bs=1k count=$((i % 7 + 1)) 2>/dev/null
    dd if=/dev/urandom of=/mnt/d$i bs=4k count=$((i % 5 + 1)) conv=fsync 2>/dev/null
    say "DURABLE d$i $(sha256sum /mnt/d$i | cut -d' ' -f1)"
    mv /mnt/t$i /mnt/r$i
    [ $i -gt 2 ] && rm -f /mnt/r$((i - 2))
    i=$((i + 1))
  done
  umount /mnt && ok crash || fail crash "umount failed"
  say "DONE"
  exec sh
fi
# A snapshot across processes (kernel command line "vhost.snapshot", scripts/guest-snapshot.mjs):
# a filesystem on LUN 0 (a RAM disk) with files made durable and one still only in the page
# cache; "=== SNAPSHOT READY", then the host stops, saves and restores the machine elsewhere and
# types a line; the files check out there, the filesystem takes more, and all survive a remount.
if grep -q vhost.snapshot /proc/cmdline; then
  A=$(wait_disk 0 300) || fail snapshot "LUN 0 did not appear"
  mke2fs -q "/dev/$A" && mount -t ext2 "/dev/$A" /mnt || fail snapshot "mke2fs or mount failed"
  for i in 1 2 3; do dd if=/dev/urandom of=/mnt/before$i bs=4k count=$((i * 32)) 2>/dev/null; done
  sync
  dd if=/dev/urandom of=/mnt/cached bs=4k count=48 2>/dev/null
  sha256sum /mnt/before1 /mnt/before2 /mnt/before3 /mnt/cached > /tmp/sums
  say "SNAPSHOT READY $(cut -c1-16 /tmp/sums | tr '\n' ' ')"
  read -r _go
  say "SNAPSHOT RESUMED at $(now)s"
  if sha256sum -c -s /tmp/sums; then ok snapshot-files; else fail snapshot-files "checksums differ after the restore"; fi
  dd if=/dev/urandom of=/mnt/after bs=4k count=64 2>/dev/null
  sha256sum /mnt/after >> /tmp/sums
  sync
  umount /mnt
  echo 3 > /proc/sys/vm/drop_caches
  if mount -t ext2 "/dev/$A" /mnt && sha256sum -c -s /tmp/sums; then ok snapshot-remount; else fail snapshot-remount "checksums differ after a remount"; fi
  say "DONE"
  exec sh
fi
if A=$(wait_disk 0 300) && B=$(wait_disk 1 300); then ok scan; else fail scan "LUNs 0 and 1 did not appear"; fi
say "SCAN disks: LUN0=$A LUN1=$B"
dmesg | grep -E "scsi [0-9]|sd [0-9]|virtio_scsi|Optimal|Write cache|Attached" | sed 's/^/  | /'
# sd warns when the Block Limits page's transfer lengths disagree with each other or the HBA.
if dmesg | grep -qE "Optimal transfer size .*(> dev_max|< PAGE_SIZE|not a multiple)"; then fail block-limits "sd warned about the transfer sizes"; else ok block-limits; fi
# sd switches the write cache with MODE SELECT (the caching page's WCE) and reads it back with MODE SENSE.
ct=/sys/class/scsi_disk/$(basename "$(readlink "/sys/block/$A/device")")/cache_type
if echo "write through" > "$ct" && [ "$(cat "$ct")" = "write through" ] && echo "write back" > "$ct" && [ "$(cat "$ct")" = "write back" ]; then ok cache-type; else fail cache-type "cache_type reads $(cat "$ct")"; fi

# A filesystem on LUN 0 (ext2, served by the ext4 driver): make, mount, write, sync, unmount,
# mount again, compare checksums.
if mke2fs -q "/dev/$A" && mount -t ext2 "/dev/$A" /mnt; then
  for i in 1 2 3 4; do dd if=/dev/urandom of=/mnt/f$i bs=4k count=$((i * 64)) 2>/dev/null; done
  cp /bin/busybox /mnt/busybox
  sha256sum /mnt/f1 /mnt/f2 /mnt/f3 /mnt/f4 /mnt/busybox > /tmp/sums
  sync
  umount /mnt
  echo 3 > /proc/sys/vm/drop_caches
  mount -t ext2 "/dev/$A" /mnt && if sha256sum -c -s /tmp/sums; then ok filesystem; else fail filesystem "checksums differ after remount"; fi
else
  fail filesystem "mke2fs or mount failed"
fi

# O_DIRECT writes and reads on LUN 1, straight to and from the device.
dd if=/dev/urandom of=/tmp/pattern bs=64k count=16 2>/dev/null
if dd if=/tmp/pattern of="/dev/$B" bs=64k oflag=direct 2>/dev/null && dd if="/dev/$B" of=/tmp/back bs=64k count=16 iflag=direct 2>/dev/null && cmp -s /tmp/pattern /tmp/back; then
  ok direct-io
else
  fail direct-io "O_DIRECT data differs"
fi
# Guest-side throughput (the emulated CPU bounds it): 4 KiB O_DIRECT reads and writes.
t0=$(now); dd if="/dev/$B" of=/dev/null bs=4k count=2048 iflag=direct 2>/dev/null; t1=$(now)
say "IO virtio-scsi read 2048x4k seconds $t0 $t1"
t0=$(now); dd if=/tmp/pattern of="/dev/$B" bs=4k count=256 oflag=direct 2>/dev/null; t1=$(now)
say "IO virtio-scsi write 256x4k seconds $t0 $t1"
# Bulk throughput: 1 MiB O_DIRECT sequential reads of LUN 0 (64 MiB) and writes to LUN 1 (16 MiB
# past its first 8), long enough for the guest's 10 ms clock.
t0=$(now); dd if="/dev/$A" of=/dev/null bs=1M count=64 iflag=direct 2>/dev/null; t1=$(now)
say "IO virtio-scsi read 64x1m seconds $t0 $t1"
t0=$(now); dd if=/dev/zero of="/dev/$B" bs=1M seek=8 count=16 oflag=direct 2>/dev/null; t1=$(now)
say "IO virtio-scsi write 16x1m seconds $t0 $t1"
# v86's IDE disk, through libata in PIO mode (its bus-master DMA times out under libata).
for m in $(cat /etc/modules.ide); do
  if [ "$m" = libata ]; then insmod "/lib/modules/$m.ko" dma=0; else insmod "/lib/modules/$m.ko"; fi
done
wait_for /sys/class/scsi_disk/1:0:0:0 100
for d in /sys/block/sd*; do
  if grep -q ATA "$d/device/vendor" 2>/dev/null; then
    I=$(basename "$d")
    t0=$(now); dd if="/dev/$I" of=/dev/null bs=4k count=2048 iflag=direct 2>/dev/null; t1=$(now)
    say "IO ide read 2048x4k seconds $t0 $t1"
    t0=$(now); dd if="/dev/$I" of=/dev/null bs=1M count=16 iflag=direct 2>/dev/null; t1=$(now)
    say "IO ide read 16x1m seconds $t0 $t1"
    t0=$(now); dd if=/dev/zero of="/dev/$I" bs=1M seek=8 count=8 oflag=direct 2>/dev/null; t1=$(now)
    say "IO ide write 8x1m seconds $t0 $t1"
  fi
done

# A program stored on the virtio disk, run many times with the page cache dropped in between:
# its pages come back by DMA each time, into frames that may hold code v86 compiled before.
n=0
for i in $(seq 1 12); do
  echo 3 > /proc/sys/vm/drop_caches
  [ "$(/mnt/busybox sha256sum /mnt/f2)" = "$(grep /mnt/f2 /tmp/sums)" ] && n=$((n + 1))
done
if [ $n -eq 12 ]; then ok jit-invalidation; else fail jit-invalidation "$n of 12 runs right"; fi
umount /mnt

# A LUN reset from the guest: LOGICAL UNIT RESET, then the unit attention it leaves behind.
if sg_reset -d "/dev/$B" >/dev/null 2>&1; then
  sg_turs "/dev/$B" >/dev/null 2>&1
  if sg_turs "/dev/$B" >/dev/null 2>&1; then ok lun-reset; else fail lun-reset "TEST UNIT READY fails after the reset"; fi
else
  fail lun-reset "sg_reset -d failed"
fi

# The driver unloaded and loaded again: the disks come back with their data.
rmmod sd_mod virtio_scsi 2>/dev/null || rmmod virtio_scsi
wait_for "/sys/block/$A" 50 gone || fail rmmod "LUN 0 still there"
insmod /lib/modules/virtio_scsi.ko
lsmod | grep -q sd_mod || insmod /lib/modules/sd_mod.ko
if A=$(wait_disk 0 300) && wait_disk 1 300 >/dev/null; then
  mount -t ext2 "/dev/$A" /mnt && sha256sum -c -s /tmp/sums && ok reload || fail reload "data differs after reloading the driver"
  umount /mnt
else
  fail reload "LUNs did not come back"
fi

# Hot-plug: the host adds LUN 2 when asked; the rescan event brings it in.
say "HOTPLUG?"
if C=$(wait_disk 2 300); then
  dd if=/tmp/pattern of="/dev/$C" bs=64k oflag=direct 2>/dev/null && dd if="/dev/$C" of=/tmp/back bs=64k count=16 iflag=direct 2>/dev/null && cmp -s /tmp/pattern /tmp/back && ok hotplug || fail hotplug "I/O on the new LUN failed"
  # sg3_utils on the RAM LUN: a persistent reservation's life (register, reserve Write
  # Exclusive, read back, release, unregister), then COMPARE AND WRITE of block 0: from the
  # pattern to zeroes, and again, which must now miscompare (exit status 14) and change nothing.
  if sg_persist -n -o -G -S 0xabc "/dev/$C" >/dev/null 2>&1 &&
    sg_persist -n -o -R -K 0xabc -T 1 "/dev/$C" >/dev/null 2>&1 &&
    sg_persist -n -i -k "/dev/$C" 2>/dev/null | grep -q "0xabc" &&
    sg_persist -n -i -r "/dev/$C" 2>/dev/null | grep -q "Write Exclusive" &&
    sg_persist -n -o -L -K 0xabc -T 1 "/dev/$C" >/dev/null 2>&1 &&
    sg_persist -n -o -G -K 0xabc -S 0 "/dev/$C" >/dev/null 2>&1 &&
    sg_persist -n -i -k "/dev/$C" 2>/dev/null | grep -q "NO registered"; then
    ok persistent-reservations
  else
    fail persistent-reservations "$(sg_persist -n -i -s "/dev/$C" 2>&1 | tr '\n' ' ')"
  fi
  head -c 512 /tmp/pattern > /tmp/caw-old
  dd if=/dev/zero of=/tmp/caw-new bs=512 count=1 2>/dev/null
  cat /tmp/caw-old /tmp/caw-new > /tmp/caw1
  sg_compare_and_write --in=/tmp/caw1 --lba=0 --num=1 "/dev/$C" >/dev/null 2>&1
  first=$?
  sg_compare_and_write --in=/tmp/caw1 --lba=0 --num=1 "/dev/$C" >/dev/null 2>&1
  second=$?
  dd if="/dev/$C" of=/tmp/caw-back bs=512 count=1 iflag=direct 2>/dev/null
  if [ $first -eq 0 ] && [ $second -eq 14 ] && cmp -s /tmp/caw-new /tmp/caw-back; then ok compare-and-write; else fail compare-and-write "exit statuses $first and $second"; fi
  say "UNPLUG?"
  if wait_for "/sys/class/scsi_disk/0:0:1:2" 300 gone; then ok unplug; else fail unplug "LUN 2 stayed"; fi
else
  fail hotplug "LUN 2 did not appear"
fi
# virtio-blk (the second PCI function, served through /dev/vhost-blk): a filesystem whose files
# check out after a remount, O_DIRECT past its end, the driver unloaded and loaded again.
if wait_for /sys/block/vda 300 && [ "$(cat /sys/block/vda/size)" != 0 ]; then ok blk-scan; else fail blk-scan "vda did not appear"; fi
dmesg | grep -E "virtio_blk|vda" | sed 's/^/  | /'
if mke2fs -q /dev/vda 32768 && mount -t ext2 /dev/vda /mnt; then
  for i in 1 2 3; do dd if=/dev/urandom of=/mnt/g$i bs=4k count=$((i * 64)) 2>/dev/null; done
  sha256sum /mnt/g1 /mnt/g2 /mnt/g3 > /tmp/bsums
  sync
  umount /mnt
  echo 3 > /proc/sys/vm/drop_caches
  mount -t ext2 /dev/vda /mnt && if sha256sum -c -s /tmp/bsums; then ok blk-filesystem; else fail blk-filesystem "checksums differ after remount"; fi
  umount /mnt
else
  fail blk-filesystem "mke2fs or mount failed"
fi
# The filesystem takes the first 32 MiB; O_DIRECT goes after it.
if dd if=/tmp/pattern of=/dev/vda bs=64k seek=512 oflag=direct 2>/dev/null && dd if=/dev/vda of=/tmp/back bs=64k skip=512 count=16 iflag=direct 2>/dev/null && cmp -s /tmp/pattern /tmp/back; then
  ok blk-direct-io
else
  fail blk-direct-io "O_DIRECT data differs"
fi
t0=$(now); dd if=/dev/vda of=/dev/null bs=4k skip=8192 count=2048 iflag=direct 2>/dev/null; t1=$(now)
say "IO virtio-blk read 2048x4k seconds $t0 $t1"
t0=$(now); dd if=/tmp/pattern of=/dev/vda bs=4k seek=8192 count=256 oflag=direct 2>/dev/null; t1=$(now)
say "IO virtio-blk write 256x4k seconds $t0 $t1"
rmmod virtio_blk
wait_for /sys/block/vda 50 gone || fail blk-reload "vda still there"
insmod /lib/modules/virtio_blk.ko
if wait_for /sys/block/vda 300; then
  mount -t ext2 /dev/vda /mnt && sha256sum -c -s /tmp/bsums && ok blk-reload || fail blk-reload "data differs after reloading the driver"
  umount /mnt
else
  fail blk-reload "vda did not come back"
fi
say "DONE at $(now)s"
poweroff -f
