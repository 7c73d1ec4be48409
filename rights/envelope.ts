/**
 * Envelope encryption of personal records (policy 4.1 "encryption", 5.2 erasure): every personal and
 * reject value is sealed with a data key of its device (DEK, AES-256-GCM), and the DEK is kept only
 * wrapped by the key-encryption key of the device's zone (KEK, AES-256-GCM) in the zone's key store
 * (keystore.ts). Destroying a device's wrapped DEK makes every copy of its records (the topics, their
 * replicas, a backup taken with kcat) unreadable at once: crypto-shredding.
 *
 * Formats (both bind their context as AES-GCM additional data, so a value cannot be moved to another
 * device or a DEK to another zone without failing authentication):
 * - sealed value:  0xE1 | iv (12) | ciphertext | tag (16); AAD = the record key (the device's subject).
 * - wrapped DEK:   iv (12) | ciphertext (32) | tag (16);    AAD = "dek" | zone | subject.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { CodedError } from '../runtime/index.ts';

export const SEALED_MAGIC = 0xe1;
const IV = 12;
const TAG = 16;
export const KEY_BYTES = 32;

export type EnvelopeErrorCode = 'RIGHTS_NOT_SEALED' | 'RIGHTS_UNSEAL_FAILED' | 'RIGHTS_UNWRAP_FAILED';

/** A value that is not sealed, or whose key or content does not authenticate. */
export class EnvelopeError extends CodedError<EnvelopeErrorCode> {}

/** Whether a record value is sealed (starts with the magic byte; a plain value starts with Avro's 0xC3 01 or 0x00). */
export function isSealed(value: Buffer): boolean {
  return value.length >= 1 + IV + TAG && value[0] === SEALED_MAGIC;
}

/**
 * IVs for `seal`, from CSPRNG bytes drawn 4,080 at a time (340 IVs): a `randomBytes(12)` per record was
 * one call into OpenSSL's generator each, ~5 µs, a third of a seal. Every IV is still 96 fresh random
 * bits used once (the buffer only advances), and each thread has its own buffer.
 */
const IV_POOL_BYTES = 340 * IV;
let ivPool = Buffer.alloc(0);
let ivAt = 0;

function nextIv(): Buffer {
  if (ivAt + IV > ivPool.length) {
    ivPool = randomBytes(IV_POOL_BYTES);
    ivAt = 0;
  }
  const iv = ivPool.subarray(ivAt, ivAt + IV);
  ivAt += IV;
  return iv;
}

/** Seals a record value under a device's DEK; `aad` is the record key. */
export function seal(dek: Buffer, value: Buffer, aad: Buffer): Buffer {
  const iv = nextIv();
  const c = createCipheriv('aes-256-gcm', dek, iv);
  c.setAAD(aad);
  const out = Buffer.allocUnsafe(1 + IV + value.length + TAG);
  out[0] = SEALED_MAGIC;
  iv.copy(out, 1);
  let at = 1 + IV;
  at += c.update(value).copy(out, at);
  at += c.final().copy(out, at);
  c.getAuthTag().copy(out, at);
  return out;
}

/** Opens a sealed value; throws EnvelopeError when it is not sealed or does not authenticate under `dek`. */
export function unseal(dek: Buffer, sealed: Buffer, aad: Buffer): Buffer {
  if (!isSealed(sealed)) throw new EnvelopeError('RIGHTS_NOT_SEALED', 'value is not sealed (no 0xE1 envelope)');
  const d = createDecipheriv('aes-256-gcm', dek, sealed.subarray(1, 1 + IV));
  d.setAAD(aad);
  d.setAuthTag(sealed.subarray(sealed.length - TAG));
  try {
    return Buffer.concat([d.update(sealed.subarray(1 + IV, sealed.length - TAG)), d.final()]);
  } catch {
    throw new EnvelopeError('RIGHTS_UNSEAL_FAILED', 'sealed value does not authenticate under this key');
  }
}

const dekAad = (zone: string, subject: Buffer) => Buffer.concat([Buffer.from(`dek|${zone}|`), subject]);

/** Wraps a DEK under a zone's KEK. */
export function wrapDek(kek: Buffer, dek: Buffer, zone: string, subject: Buffer): Buffer {
  const iv = randomBytes(IV);
  const c = createCipheriv('aes-256-gcm', kek, iv);
  c.setAAD(dekAad(zone, subject));
  return Buffer.concat([iv, c.update(dek), c.final(), c.getAuthTag()]);
}

/** Unwraps a DEK; throws EnvelopeError when the KEK is not the one it was wrapped with (or the bytes were altered). */
export function unwrapDek(kek: Buffer, wrapped: Buffer, zone: string, subject: Buffer): Buffer {
  if (wrapped.length !== IV + KEY_BYTES + TAG)
    throw new EnvelopeError('RIGHTS_UNWRAP_FAILED', `wrapped key of ${wrapped.length} bytes, expected ${IV + KEY_BYTES + TAG}`);
  const d = createDecipheriv('aes-256-gcm', kek, wrapped.subarray(0, IV));
  d.setAAD(dekAad(zone, subject));
  d.setAuthTag(wrapped.subarray(IV + KEY_BYTES));
  try {
    return Buffer.concat([d.update(wrapped.subarray(IV, IV + KEY_BYTES)), d.final()]);
  } catch {
    throw new EnvelopeError('RIGHTS_UNWRAP_FAILED', 'wrapped data key does not authenticate under this key-encryption key');
  }
}

export const newKey = (): Buffer => randomBytes(KEY_BYTES);
