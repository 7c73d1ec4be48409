/**
 * Request bodies on the HTTP thread: the body headers parsed, the body read with a byte limit.
 *
 * Two different limits, because they guard different things:
 * - the wire limit (`maxBodyBytes`, here) bounds what the HTTP thread buffers. It is decided from
 *   Content-Length before a byte is read, or while streaming a chunked body, so a 1 GiB upload is
 *   refused after at most `maxBodyBytes` + one chunk;
 * - the decompressed limit (`maxDecompressedBytes`, steps/decompress.ts in a pool worker) bounds what a
 *   worker inflates. A gzip bomb (1 MiB expanding to 1 GiB) is stopped by zlib's `maxOutputLength`
 *   after that many bytes were produced, not after the whole 1 GiB was allocated.
 */
import type { IncomingMessage } from 'node:http';
import { fail, type Outcome } from './errors.ts';

export type ContentEncoding = 'identity' | 'gzip';

/** A body read or header parsed, or why not. */
export type Read<T> = Outcome<T>;

/** Parses Content-Encoding; anything but gzip/identity is 415 (we would not know how to read it). */
export function parseContentEncoding(header: string | undefined): Read<ContentEncoding> {
  const v = (header ?? '').trim().toLowerCase();
  if (v === '' || v === 'identity') return { ok: true, value: 'identity' };
  if (v === 'gzip' || v === 'x-gzip') return { ok: true, value: 'gzip' };
  return fail('INGEST_UNSUPPORTED_CONTENT_ENCODING', `Content-Encoding "${v.slice(0, 40)}" is not supported: send gzip or no encoding`);
}

/** Content-Length as a number, `undefined` when absent (chunked), or a failure when malformed. */
export function parseContentLength(header: string | undefined): Read<number | undefined> {
  if (header === undefined) return { ok: true, value: undefined };
  if (!/^\d{1,15}$/.test(header.trim())) return fail('INGEST_BODY_INCOMPLETE', `Content-Length "${header.slice(0, 20)}" is not a byte count`);
  return { ok: true, value: Number(header.trim()) };
}

/**
 * Reads the body into one Buffer that owns its whole ArrayBuffer (never a slice of Node's shared
 * pool), so the ArrayBuffer can be *moved* to a worker without copying and without detaching memory
 * other code still uses.
 */
export function readBody(req: IncomingMessage, maxBytes: number, declaredLength: number | undefined): Promise<Read<Buffer>> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: Read<Buffer>) => {
      if (done) return;
      done = true;
      req.removeListener('data', onData);
      req.removeListener('end', onEnd);
      req.removeListener('error', onError);
      req.removeListener('aborted', onAborted);
      resolve(r);
    };
    // Known length: one allocation of exactly that size, filled in place.
    const fixed = declaredLength !== undefined ? new Uint8Array(new ArrayBuffer(declaredLength)) : undefined;
    const chunks: Buffer[] = [];
    let received = 0;
    const onData = (chunk: Buffer) => {
      if (received + chunk.length > (fixed ? fixed.length : maxBytes)) {
        // Over the limit (chunked), or more bytes than Content-Length announced (Node normally
        // refuses that itself; kept as a guard so `fixed` can never overflow).
        req.pause();
        finish(
          fixed
            ? fail('INGEST_BODY_INCOMPLETE', `body is longer than its Content-Length ${fixed.length}`)
            : fail('INGEST_BODY_TOO_LARGE', `body exceeds ${maxBytes} bytes: split the batch`),
        );
        return;
      }
      if (fixed) fixed.set(chunk, received);
      else chunks.push(chunk);
      received += chunk.length;
    };
    const onEnd = () => {
      if (fixed) {
        if (received !== fixed.length) return finish(fail('INGEST_BODY_INCOMPLETE', `body ended after ${received} of ${fixed.length} bytes`));
        return finish({ ok: true, value: Buffer.from(fixed.buffer, 0, fixed.length) });
      }
      const out = new Uint8Array(new ArrayBuffer(received));
      let at = 0;
      for (const c of chunks) {
        out.set(c, at);
        at += c.length;
      }
      finish({ ok: true, value: Buffer.from(out.buffer, 0, received) });
    };
    const onError = () => finish(fail('INGEST_BODY_INCOMPLETE', 'connection failed while reading the body'));
    const onAborted = () => finish(fail('INGEST_BODY_INCOMPLETE', 'client aborted while sending the body'));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
}
