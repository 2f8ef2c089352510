// v86's options for the Linux guest, wherever it boots (scripts/guest.mjs in Node, the demo page,
// the browser tests' pages): `image(name)` gives v86 each file of the guest's cache
// (bios.bin, vgabios-stdvga.bin, vmlinuz, initramfs.cpio.gz) as a buffer or a URL.
export function guestV86Options(image, { memoryMiB = 128, cmdline = "", hdaBytes = 0 } = {}) {
  return {
    bios: image("bios.bin"),
    vga_bios: image("vgabios-stdvga.bin"),
    bzimage: image("vmlinuz"),
    initrd: image("initramfs.cpio.gz"),
    cmdline: `console=ttyS0 quiet loglevel=4${cmdline ? ` ${cmdline}` : ""}`,
    memory_size: memoryMiB << 20,
    ...(hdaBytes ? { hda: { buffer: new ArrayBuffer(hdaBytes) } } : {}),
    disable_speaker: true,
    acpi: false,
  };
}
