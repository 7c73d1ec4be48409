/**
 * CRC-64-AVRO ("Rabin") fingerprint of the Avro specification, "Schema Fingerprints". avsc 5.x only
 * offers MD5/SHA fingerprints, and single-object encoding requires this one. It is computed once per
 * schema, so BigInt arithmetic is plenty fast.
 */
const EMPTY = 0xc15d213aa4d7a795n;
const MASK = 0xffffffffffffffffn;

const TABLE: bigint[] = (() => {
  const t: bigint[] = new Array(256);
  for (let i = 0; i < 256; i++) {
    let fp = BigInt(i);
    for (let j = 0; j < 8; j++) fp = (fp >> 1n) ^ (EMPTY & -(fp & 1n) & MASK);
    t[i] = fp;
  }
  return t;
})();

/** Fingerprint of `bytes` as an unsigned 64-bit BigInt. */
export function crc64Avro(bytes: Uint8Array): bigint {
  let fp = EMPTY;
  for (const b of bytes) fp = (fp >> 8n) ^ TABLE[Number((fp ^ BigInt(b)) & 0xffn)]!;
  return fp;
}

/** The 8-byte little-endian form used in the single-object encoding header. */
export function crc64AvroLE(bytes: Uint8Array): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(crc64Avro(bytes));
  return out;
}
