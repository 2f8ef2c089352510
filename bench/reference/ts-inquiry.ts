// The INQUIRY path in plain TypeScript, as the reference for the INQUIRY dispatch benchmark:
// the same steps the data plane takes for a one-descriptor-each chain (pop, header and LUN
// checks, CDB checks, standard data, response, used ring). It serves only this case.
import { VRING_DESC_F_NEXT } from "../../src/virtio/ring.js";

export class TsInquiryQueue {
  private readonly u8: Uint8Array;
  private readonly u16: Uint16Array;
  private readonly u32: Uint32Array;
  private readonly dv: DataView;
  private lastAvail = 0;
  private lastUsed = 0;

  constructor(
    buffer: SharedArrayBuffer,
    private readonly num: number,
    private readonly desc: number,
    private readonly avail: number,
    private readonly used: number,
    private readonly gpaToHva: (gpa: number) => number,
    private readonly ident: Uint8Array,
  ) {
    this.u8 = new Uint8Array(buffer);
    this.u16 = new Uint16Array(buffer);
    this.u32 = new Uint32Array(buffer);
    this.dv = new DataView(buffer);
  }

  drain(): void {
    const idx = Atomics.load(this.u16, (this.avail + 2) >>> 1);
    if (((idx - this.lastAvail) & 0xffff) > this.num) throw new Error("bad avail index");
    while (this.lastAvail !== idx) {
      const head = this.u16[((this.avail + 4) >>> 1) + (this.lastAvail & (this.num - 1))];
      this.lastAvail = (this.lastAvail + 1) & 0xffff;
      // Three descriptors: header (out), response (in), data-in (in).
      const descs: [number, number][] = [];
      for (let i = head, n = 0; n < 3; n++) {
        const w = (this.desc + 16 * i) >>> 2;
        descs.push([this.gpaToHva(this.u32[w]), this.u32[w + 2]]);
        if (!(this.u32[w + 3] & VRING_DESC_F_NEXT)) break;
        i = this.u32[w + 3] >>> 16;
      }
      const [[hdr, hlen], [resp], [data, dlen]] = descs;
      let status = 0;
      let written = 0;
      if (hlen < 51 || this.u8[hdr] !== 1) status = 3;
      else {
        const cdb = hdr + 19;
        const alloc = this.dv.getUint16(cdb + 3);
        if (this.u8[cdb] !== 0x12 || this.u8[cdb + 1] & 0xfe || this.u8[cdb + 2] !== 0 || dlen < alloc) status = 2;
        else {
          const n = Math.min(36, alloc);
          this.u8.set(this.ident.subarray(0, n), data);
          written = n;
        }
      }
      this.u8.fill(0, resp, resp + 108);
      this.dv.setUint32(resp + 4, dlen - written, true);
      this.u8[resp + 10] = status === 2 ? 2 : 0;
      this.u8[resp + 11] = status === 3 ? 3 : 0;
      const u = ((this.used + 4) >>> 2) + 2 * (this.lastUsed & (this.num - 1));
      this.u32[u] = head;
      this.u32[u + 1] = 108 + written;
      this.lastUsed = (this.lastUsed + 1) & 0xffff;
    }
    Atomics.store(this.u16, (this.used + 2) >>> 1, this.lastUsed);
  }
}
