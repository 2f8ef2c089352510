#!/bin/sh
# Placeholder init while bringing up the v86 guest.
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "=== BOOTED $(uname -r)"
poweroff -f
