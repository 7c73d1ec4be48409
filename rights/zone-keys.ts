/**
 * The key material of a residency zone, outside the key store (a directory per zone; in Kubernetes a
 * Secret mounted into the pods, like the day secrets):
 * - `subject.key`: the 32-byte key of the keyed hashes that name a device without naming it (the
 *   record keys of the personal and rejects topics, the key store's rows, the suppression list). Never
 *   rotated: every record key and every lookup depends on it.
 * - `kek-v<N>.key`: the key-encryption keys, version N; the highest is current (new DEKs are wrapped
 *   with it). `rotateKek` adds a version, the key store re-wraps every live DEK with it
 *   (keystore.ts `rewrap`), and `retireKek` destroys an old version once no copy of the store that
 *   needs it may be restored (its backup window): an erased DEK that survives in an old backup or WAL
 *   of the store is then wrapped by a key that no longer exists.
 *
 * Files are created with runtime/secret-file.ts `createFileOnce` (mode 0600): written whole under a name
 * of their own and hard-linked into place, so racing processes agree on one key and none reads it
 * half-written (rights.test.ts, the race).
 */
import { createHmac, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, unlinkSync, writeSync, constants as fsc } from 'node:fs';
import { join } from 'node:path';
import { CodedError, createFileOnce } from '../runtime/index.ts';
import { KEY_BYTES } from './envelope.ts';

export type ZoneKeysErrorCode = 'RIGHTS_KEYS_MISSING' | 'RIGHTS_KEYS_BAD';
export class ZoneKeysError extends CodedError<ZoneKeysErrorCode> {}

/** Bytes of a subject (record key) and of an identifier's lookup hash. */
export const SUBJECT_BYTES = 16;

export interface ZoneKeys {
  zone: string;
  subjectKey: Buffer;
  /** KEK versions present, by version. */
  keks: Map<number, Buffer>;
  current: number;
}

const KEK_FILE = /^kek-v(\d+)\.key$/;

function readKey(path: string): Buffer {
  const b = readFileSync(path);
  if (b.length !== KEY_BYTES) throw new ZoneKeysError('RIGHTS_KEYS_BAD', `${path}: ${b.length} bytes, expected ${KEY_BYTES}`);
  return b;
}

/**
 * Reads a zone's keys from `<dir>/<zone>/`. With `create` (the local stack, tests, the demo, where
 * several ingest processes and their workers may open one directory at once) a missing subject key or
 * KEK is made, and whoever comes second reads the first one's key; without it, missing keys throw
 * RIGHTS_KEYS_MISSING naming the file.
 */
export function openZoneKeys(dir: string, zone: string, opts: { create: boolean }): ZoneKeys {
  const zdir = join(dir, zone);
  if (opts.create) {
    mkdirSync(zdir, { recursive: true, mode: 0o700 });
    createFileOnce(join(zdir, 'subject.key'), randomBytes(KEY_BYTES));
    if (!kekVersions(zdir).length) createFileOnce(join(zdir, 'kek-v1.key'), randomBytes(KEY_BYTES));
  }
  let subjectKey: Buffer;
  try {
    subjectKey = readKey(join(zdir, 'subject.key'));
  } catch (e) {
    if (e instanceof ZoneKeysError) throw e;
    throw new ZoneKeysError('RIGHTS_KEYS_MISSING', `zone ${zone}: no subject key at ${join(zdir, 'subject.key')}`, { cause: e });
  }
  const keks = new Map<number, Buffer>();
  for (const v of kekVersions(zdir)) keks.set(v, readKey(join(zdir, `kek-v${v}.key`)));
  if (keks.size === 0) throw new ZoneKeysError('RIGHTS_KEYS_MISSING', `zone ${zone}: no key-encryption key (kek-v<N>.key) in ${zdir}`);
  return { zone, subjectKey, keks, current: Math.max(...keks.keys()) };
}

function kekVersions(zdir: string): number[] {
  let names: string[];
  try {
    names = readdirSync(zdir);
  } catch {
    return [];
  }
  return names.flatMap((n) => {
    const m = KEK_FILE.exec(n);
    return m ? [Number(m[1])] : [];
  });
}

/** Adds KEK version current+1 (the key store must then re-wrap: keystore.ts `rewrap`). Returns the new version. */
export function rotateKek(dir: string, zone: string): number {
  const zdir = join(dir, zone);
  const next = Math.max(0, ...kekVersions(zdir)) + 1;
  if (!createFileOnce(join(zdir, `kek-v${next}.key`), randomBytes(KEY_BYTES)))
    throw new ZoneKeysError('RIGHTS_KEYS_BAD', `kek-v${next}.key appeared meanwhile`);
  return next;
}

/** Destroys a KEK version: overwritten, then removed. Refuses the current version. */
export function retireKek(dir: string, zone: string, version: number): void {
  const zdir = join(dir, zone);
  const versions = kekVersions(zdir);
  if (version >= Math.max(...versions)) throw new ZoneKeysError('RIGHTS_KEYS_BAD', `kek-v${version} is the current key of zone ${zone}: rotate first`);
  const path = join(zdir, `kek-v${version}.key`);
  const fd = openSync(path, fsc.O_WRONLY);
  try {
    writeSync(fd, Buffer.alloc(KEY_BYTES), 0, KEY_BYTES, 0);
  } finally {
    closeSync(fd);
  }
  unlinkSync(path);
}

/** A device's subject: the record key of its personal and reject records, the key store's row key. */
export function subjectOf(keys: ZoneKeys, identity: string): Buffer {
  return createHmac('sha256', keys.subjectKey).update('subject|').update(identity).digest().subarray(0, SUBJECT_BYTES);
}

/** The lookup hash of one identifier a device sent (`device_id:<v>`, `imei:<v>`, `oaid:<v>`, ...). */
export function identifierHash(keys: ZoneKeys, identifier: string): Buffer {
  return createHmac('sha256', keys.subjectKey).update('ident|').update(identifier).digest().subarray(0, SUBJECT_BYTES);
}
