/**
 * A file that several processes may try to create at once, and that must appear whole or not at all:
 * the day secrets of the tokenizer (schemas/tokenizer.ts) and a zone's keys (rights/zone-keys.ts), in
 * directories that every copy of a service shares.
 *
 * The bytes are written and fsynced under a name of this writer's own, then hard-linked to `path`.
 * `link` fails when `path` exists, so exactly one racer wins and every reader sees either no file or the
 * winner's whole file. Created in place with O_EXCL and then written, a reader could see the file empty
 * between the winner's open and write, and a writer killed in between left an empty file that no one
 * would ever fill. A writer killed here leaves only its own `*.tmp` name behind.
 */
import { closeSync, fsyncSync, linkSync, openSync, unlinkSync, writeSync, constants as fsc } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { threadId } from 'node:worker_threads';

/** The suffix of a writer's own name; directory listings that parse names must not take it for a file of theirs. */
export const PENDING_SUFFIX = '.tmp';

/**
 * Creates `path` holding `bytes` (file mode `mode`) unless it exists. True when this call created it,
 * false when it was already there (someone else's bytes stay; read them). Other errors are thrown.
 */
export function createFileOnce(path: string, bytes: Uint8Array, mode = 0o600): boolean {
  const tmp = `${path}.${process.pid}.${threadId}.${randomBytes(6).toString('hex')}${PENDING_SUFFIX}`;
  const fd = openSync(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, mode);
  // The pending name goes whatever happens after it was made (a failed write or fsync included).
  try {
    try {
      writeSync(fd, bytes);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    linkSync(tmp, path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  } finally {
    unlinkSync(tmp);
  }
}
