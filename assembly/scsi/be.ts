// Big-endian field access, as SCSI CDBs and parameter data are laid out.

@inline export function be16(p: usize): u32 {
  return <u32>bswap<u16>(load<u16>(p));
}
@inline export function be24(p: usize): u32 {
  return (<u32>load<u8>(p) << 16) | (<u32>load<u8>(p, 1) << 8) | <u32>load<u8>(p, 2);
}
@inline export function be32(p: usize): u32 {
  return bswap<u32>(load<u32>(p));
}
@inline export function be64(p: usize): u64 {
  return bswap<u64>(load<u64>(p));
}
@inline export function put16(p: usize, v: u32): void {
  store<u16>(p, bswap<u16>(<u16>v));
}
@inline export function put32(p: usize, v: u32): void {
  store<u32>(p, bswap<u32>(v));
}
@inline export function put64(p: usize, v: u64): void {
  store<u64>(p, bswap<u64>(v));
}
