/**
 * Step 1 of a pool task: the body as sent -> the body as written. Inflates a gzip body (all members:
 * `gzip` files may be concatenations) into at most `maxOut` bytes. Runs in a pool worker: it is CPU
 * work, and zlib's `maxOutputLength` makes it stop early on a bomb (1 MiB expanding to 1 GiB is stopped
 * after `maxOut` bytes were produced, not after the whole 1 GiB was allocated).
 */
import { gunzipSync } from 'node:zlib';
import type { ContentEncoding } from '../body.ts';
import { fail, type Outcome } from '../errors.ts';

export function decompress(body: Buffer, encoding: ContentEncoding, maxOut: number): Outcome<Buffer> {
  if (encoding === 'identity') {
    if (body.length > maxOut) return fail('INGEST_DECOMPRESSED_TOO_LARGE', `body exceeds ${maxOut} bytes`);
    return { ok: true, value: body };
  }
  try {
    return { ok: true, value: gunzipSync(body, { maxOutputLength: maxOut }) };
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
      return fail('INGEST_DECOMPRESSED_TOO_LARGE', `gzip body expands beyond ${maxOut} bytes: split the batch`);
    }
    return fail('INGEST_BAD_GZIP', `body is not valid gzip (${code ?? 'zlib error'}): send it uncompressed or re-encode it`);
  }
}
