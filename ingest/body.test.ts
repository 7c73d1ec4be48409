import { describe, expect, it } from 'vitest';
import { createServer, request, type IncomingMessage } from 'node:http';
import { gzipSync } from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { parseContentEncoding, parseContentLength, readBody, type Read } from './body.ts';
import { decompress } from './steps/decompress.ts';

/** 1 MiB of gzip that expands to 1 GiB: 1024 gzip members of 1 MiB of zeros each (RFC 1952 allows
 * concatenated members and zlib inflates them all). Built from one small member, so the test never
 * holds or compresses the gigabyte itself. */
function gzipBomb(): { bomb: Buffer; expandsTo: number } {
  const member = gzipSync(Buffer.alloc(1024 * 1024), { level: 9 });
  const bomb = Buffer.concat(Array.from({ length: 1024 }, () => member));
  return { bomb, expandsTo: 1024 * 1024 * 1024 };
}

async function withServer(maxBytes: number, fn: (port: number, got: Promise<Read<Buffer>>) => Promise<void>): Promise<void> {
  let resolveGot!: (r: Read<Buffer>) => void;
  const got = new Promise<Read<Buffer>>((r) => (resolveGot = r));
  const server = createServer((req: IncomingMessage, res) => {
    const len = parseContentLength(req.headers['content-length']);
    if (!len.ok) throw new Error('bad len');
    void readBody(req, maxBytes, len.value).then((r) => {
      resolveGot(r);
      res.end('x');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    await fn((server.address() as AddressInfo).port, got);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
}

function post(port: number, chunks: Buffer[], headers: Record<string, string> = {}): void {
  const req = request({ port, host: '127.0.0.1', method: 'POST', path: '/', headers });
  req.on('error', () => {});
  req.on('response', (res) => res.resume());
  for (const c of chunks) req.write(c);
  req.end();
}

describe('body limits', () => {
  it('reads a body with Content-Length into a buffer that owns its ArrayBuffer (movable)', async () => {
    await withServer(1000, async (port, got) => {
      post(port, [Buffer.from('hello'), Buffer.from(' world')], { 'content-length': '11' });
      const r = await got;
      expect(r.ok && r.value.toString()).toBe('hello world');
      expect(r.ok && r.value.buffer.byteLength).toBe(11);
    });
  });

  it('stops a chunked body as soon as it passes the limit', async () => {
    await withServer(1000, async (port, got) => {
      post(
        port,
        Array.from({ length: 50 }, () => Buffer.alloc(100, 1)),
      );
      const r = await got;
      expect(!r.ok && r.code).toBe('INGEST_BODY_TOO_LARGE');
    });
  });

  it('reads a chunked body under the limit', async () => {
    await withServer(1000, async (port, got) => {
      post(port, [Buffer.alloc(300, 1), Buffer.alloc(300, 2)]);
      const r = await got;
      expect(r.ok && r.value.length).toBe(600);
      expect(r.ok && r.value.buffer.byteLength).toBe(600);
    });
  });

  it('parses headers strictly', () => {
    expect(parseContentLength('12')).toEqual({ ok: true, value: 12 });
    expect(parseContentLength(undefined)).toEqual({ ok: true, value: undefined });
    expect(parseContentLength('-1').ok).toBe(false);
    expect(parseContentEncoding('GZIP')).toEqual({ ok: true, value: 'gzip' });
    expect(parseContentEncoding(undefined)).toEqual({ ok: true, value: 'identity' });
    const br = parseContentEncoding('br');
    expect(!br.ok && br.code).toBe('INGEST_UNSUPPORTED_CONTENT_ENCODING');
  });
});

describe('decompress', () => {
  it('inflates gzip within the limit', () => {
    const r = decompress(gzipSync(Buffer.from('abc'.repeat(1000))), 'gzip', 10_000);
    expect(r.ok && r.value.length).toBe(3000);
  });

  it('refuses a gzip bomb (1 MiB -> 1 GiB) after producing at most the limit', () => {
    const { bomb, expandsTo } = gzipBomb();
    expect(bomb.length).toBeLessThanOrEqual(1.1 * 1024 * 1024);
    expect(expandsTo / bomb.length).toBeGreaterThan(900);
    const before = process.memoryUsage().arrayBuffers;
    const t0 = performance.now();
    const r = decompress(bomb, 'gzip', 8 * 1024 * 1024);
    const ms = performance.now() - t0;
    expect(!r.ok && r.code).toBe('INGEST_DECOMPRESSED_TOO_LARGE');
    // The inflater stopped near the 8 MiB cap: nothing like 1 GiB was allocated. (Not a speed goal;
    // a generous bound that would only fail if the whole gigabyte were inflated.)
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(256 * 1024 * 1024);
    expect(ms).toBeLessThan(5000);
  });

  it('says 400 for a body that is not gzip, and checks identity bodies against the limit', () => {
    const r = decompress(Buffer.from('not gzip at all'), 'gzip', 1000);
    expect(!r.ok && r.code).toBe('INGEST_BAD_GZIP');
    const big = decompress(Buffer.alloc(2000), 'identity', 1000);
    expect(!big.ok && big.code).toBe('INGEST_DECOMPRESSED_TOO_LARGE');
  });
});
