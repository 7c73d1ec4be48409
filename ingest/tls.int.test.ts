/**
 * Ingest over HTTPS against the real broker (ingest/README.md, "TLS"; policy 4.1): a device trusting the
 * project's CA posts a batch and gets 200; a plain-HTTP client and a client that does not trust the CA
 * are refused (negative control: the same plain client succeeds against an ingest started with
 * INGEST_UNSAFE_PLAINTEXT_HTTP=true); keep-alive works over TLS; replacing the certificate files gives new
 * connections the new certificate while an open keep-alive connection carries on with the old one; a bad
 * new pair keeps the previous certificate; the handshake has the header deadline (control: node's own
 * deadline keeps a silent client). The CA and certificates are made with openssl (stack/tls.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { Agent, createServer as createHttpsServer, request as httpsRequest, type Server as HttpsServer } from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls, { type TLSSocket } from 'node:tls';
import { createLogger } from '../runtime/index.ts';
import { batch, containerOf } from '../testing/batches.ts';
import type { IngestAnswer } from '../testing/load.ts';
import { quietLogger } from '../testing/logger.ts';
import { readAll, stackInfo, uniqueName } from '../testing/stack.ts';
import { scratchCa, type IssuedCertificate, type ScratchCa } from '../testing/tls.ts';
import { loadIngestConfig } from './config.ts';
import { startIngest, type IngestService } from './http.ts';
import { httpsOptions, readTlsFiles } from './tls.ts';
import { QUICK_MIX } from '../testing/mix.ts';

const HEADERS_TIMEOUT_MS = 1000;

function envFor(extra: Record<string, string>): Record<string, string> {
  const p = uniqueName('tls_p');
  return {
    PIPELINE_KAFKA_BROKERS: stackInfo().kafkaBrokers.join(','),
    PIPELINE_TOPIC_EVENTS: uniqueName('tls_ev'),
    PIPELINE_TOPIC_PERSONAL_PREFIX: `${p}_`,
    PIPELINE_TOPIC_REJECTS_PREFIX: `${uniqueName('tls_r')}_`,
    PIPELINE_TOPIC_RIGHTS_PREFIX: `${p}_rights_`,
    INGEST_PORT: '0',
    INGEST_POOL_THREADS: '1',
    INGEST_TOPIC_PARTITIONS: '1',
    ...QUICK_MIX, // testing/mix.ts: a lone batch need not wait for a crowd here
    INGEST_ZONES_SHARE_MAIN_CLUSTER: 'true',
    // Transport only: records unsealed (the sealing is rights/'s tests).
    INGEST_UNSAFE_UNSEALED: 'true',
    INGEST_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
    ...extra,
  };
}

interface Answer {
  status: number;
  text: string;
  /** Serial of the certificate the server presented on this request's connection (HTTPS only). */
  serial: string | undefined;
  socket: net.Socket;
  reused: boolean;
}

/** One request; `ca` undefined = the system's CAs only (a client that does not know the project's CA). */
function call(
  url: string,
  opts: { method?: string; path?: string; body?: Buffer; ca?: Buffer; agent?: Agent | false; plain?: boolean; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const common = {
      host: u.hostname,
      port: Number(u.port),
      method: opts.method ?? 'GET',
      path: opts.path ?? '/healthz',
      headers: opts.headers ?? (opts.body ? { 'content-type': 'avro/binary' } : {}),
    };
    const onResponse = (res: import('node:http').IncomingMessage) => {
      // Read now: a keep-alive agent takes the socket back once the answer is read.
      const socket = res.socket;
      const serial = 'getPeerCertificate' in socket ? (socket as TLSSocket).getPeerCertificate().serialNumber : undefined;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString(), serial, socket, reused: req.reusedSocket });
      });
    };
    const req = opts.plain
      ? httpRequest({ ...common, agent: false }, onResponse)
      : httpsRequest({ ...common, ca: opts.ca, agent: opts.agent ?? false }, onResponse);
    req.setTimeout(10_000, () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** The error a request ends with (fails the test if it gets an answer instead). */
async function refusal(p: Promise<Answer>): Promise<NodeJS.ErrnoException> {
  try {
    const a = await p;
    throw new Error(`expected the request to be refused, got HTTP ${a.status}`);
  } catch (e) {
    return e as NodeJS.ErrnoException;
  }
}

async function until<T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Replaces a file the way a Secret volume or cert-manager does: a complete new file renamed over the old. */
function replace(target: string, from: string): void {
  copyFileSync(from, `${target}.new`);
  renameSync(`${target}.new`, target);
}

/** How long until the server closes a socket that `act` opened (ms), or undefined if still open after `waitMs`. */
function closedAfter(sock: net.Socket, waitMs: number): Promise<number | undefined> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(undefined);
    }, waitMs);
    sock.on('error', () => {});
    sock.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - t0);
    });
  });
}

describe('ingest over HTTPS (real broker)', () => {
  let pki: ScratchCa;
  let ca: Buffer;
  let first: IssuedCertificate;
  let live: { certFile: string; keyFile: string };
  let svc: IngestService;
  let plainSvc: IngestService | undefined;
  let eventsTopic: string;
  const logLines: string[] = [];
  const logged = (msg: string) => logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === msg);
  const metric = async (name: string) => {
    const text = (await call(svc.url, { path: '/metrics', ca })).text;
    const line = text.split('\n').find((l) => l.startsWith(name));
    return line === undefined ? undefined : Number(line.slice(name.length).trim());
  };

  beforeAll(async () => {
    pki = await scratchCa();
    ca = readFileSync(pki.ca.certFile);
    first = await pki.issue('first');
    // The files ingest reads; the tests replace them in place.
    const liveDir = path.join(pki.dir, 'live');
    mkdirSync(liveDir);
    live = { certFile: path.join(liveDir, 'tls.crt'), keyFile: path.join(liveDir, 'tls.key') };
    copyFileSync(first.certFile, live.certFile);
    copyFileSync(first.keyFile, live.keyFile);
    const env = envFor({ INGEST_TLS_CERT_FILE: live.certFile, INGEST_TLS_KEY_FILE: live.keyFile });
    eventsTopic = env.PIPELINE_TOPIC_EVENTS!;
    const log = createLogger({ service: 'ingest', write: (l) => logLines.push(l) });
    svc = await startIngest(loadIngestConfig(env), { log, tokenKeys: { kind: 'file', dir: mkdtempSync(path.join(tmpdir(), 'ingest-keys-')) } });
  });
  afterAll(async () => {
    await svc?.close();
    await plainSvc?.close();
    pki?.remove();
  });

  it('listens on https:// and keeps every HTTP limit on the https server', () => {
    expect(svc.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const cfg = loadIngestConfig(envFor({}));
    expect(svc.server.headersTimeout).toBe(HEADERS_TIMEOUT_MS);
    expect(svc.server.requestTimeout).toBe(cfg.INGEST_REQUEST_TIMEOUT_MS);
    expect(svc.server.keepAliveTimeout).toBe(cfg.INGEST_KEEPALIVE_TIMEOUT_MS);
    expect(svc.server.maxHeadersCount).toBe(cfg.INGEST_MAX_HEADERS_COUNT);
    expect(svc.server.maxConnections).toBe(cfg.INGEST_MAX_CONNECTIONS);
    expect(logged('ingest listening')[0]).toMatchObject({ scheme: 'https', tls_serial: first.serial });
  });

  it('a batch posted over HTTPS by a client trusting the CA is answered 200, after Kafka has it; /healthz /readyz /metrics are HTTPS too', async () => {
    const r = await call(svc.url, { method: 'POST', path: '/v1/batches', body: containerOf(batch({ events: 3 })), ca });
    expect(r.status).toBe(200);
    expect((JSON.parse(r.text) as IngestAnswer).accepted).toBe(3);
    expect(r.serial).toBe(first.serial);
    expect((await readAll(eventsTopic, 1)).length).toBeGreaterThanOrEqual(1);
    expect((await call(svc.url, { path: '/readyz', ca })).status).toBe(200);
    expect(await metric('ingest_tls_certificate_expiry_seconds')).toBe(
      Math.floor(Date.parse(new X509Certificate(readFileSync(first.certFile)).validTo) / 1000),
    );
  });

  it('keep-alive over TLS: two requests on one socket', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca });
    try {
      const a = await call(svc.url, { method: 'POST', path: '/v1/batches', body: containerOf(batch({ events: 2 })), ca, agent });
      const b = await call(svc.url, { method: 'POST', path: '/v1/batches', body: containerOf(batch({ events: 2 })), ca, agent });
      expect([a.status, b.status]).toEqual([200, 200]);
      expect(a.reused).toBe(false);
      expect(b.reused).toBe(true);
      expect(b.socket).toBe(a.socket);
      expect((a.socket as TLSSocket).encrypted).toBe(true);
    } finally {
      agent.destroy();
    }
  });

  it('a plain-HTTP client is refused; negative control: the same client gets 200 from an ingest with INGEST_UNSAFE_PLAINTEXT_HTTP=true', async () => {
    const failuresBefore = (await metric('ingest_tls_handshake_failures_total')) ?? 0;
    const body = containerOf(batch({ events: 2 }));
    const e = await refusal(call(svc.url.replace('https:', 'http:'), { method: 'POST', path: '/v1/batches', body, plain: true }));
    expect(e.code ?? e.message).toMatch(/ECONNRESET|EPIPE|socket hang up/);
    expect(await metric('ingest_tls_handshake_failures_total')).toBeGreaterThan(failuresBefore);

    plainSvc = await startIngest(loadIngestConfig(envFor({ INGEST_UNSAFE_PLAINTEXT_HTTP: 'true' })), {
      log: quietLogger,
      tokenKeys: { kind: 'file', dir: mkdtempSync(path.join(tmpdir(), 'ingest-keys-')) },
    });
    expect(plainSvc.url).toMatch(/^http:\/\//);
    const ok = await call(plainSvc.url, { method: 'POST', path: '/v1/batches', body, plain: true });
    expect(ok.status).toBe(200);
  });

  it('a client that does not trust the CA is refused (system CAs only, or another CA)', async () => {
    const none = await refusal(call(svc.url, {}));
    expect(none.code).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    const otherPki = await scratchCa('some-other-ca');
    try {
      const other = await refusal(call(svc.url, { ca: readFileSync(otherPki.ca.certFile) }));
      expect(other.code).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    } finally {
      otherPki.remove();
    }
    // The control is every other test here: the same request trusting the project's CA is answered.
    expect((await call(svc.url, { ca })).status).toBe(200);
  });

  it('replaced certificate files: a new connection gets the new certificate, an open keep-alive connection keeps working with the old one', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca });
    try {
      const before = await call(svc.url, { ca, agent });
      expect(before.serial).toBe(first.serial);

      const second = await pki.issue('second');
      expect(second.serial).not.toBe(first.serial);
      replace(live.keyFile, second.keyFile);
      replace(live.certFile, second.certFile);

      const fresh = await until('a new connection to get the new certificate', async () => {
        const r = await call(svc.url, { ca });
        return r.serial === second.serial ? r : undefined;
      });
      expect(fresh.status).toBe(200);

      // The connection opened before the reload: not dropped, still the certificate it shook hands with.
      const after = await call(svc.url, { method: 'POST', path: '/v1/batches', body: containerOf(batch({ events: 2 })), ca, agent });
      expect(after.status).toBe(200);
      expect(after.reused).toBe(true);
      expect(after.socket).toBe(before.socket);
      expect(after.serial).toBe(first.serial);

      expect(logged('TLS certificate reloaded: new connections get it, open ones keep theirs')).toEqual([
        expect.objectContaining({ level: 'info', serial: second.serial, previous_serial: first.serial }),
      ]);
      expect(await metric('ingest_tls_reloads_total{result="ok"}')).toBe(1);
    } finally {
      agent.destroy();
    }
  });

  it('a new pair that does not fit keeps the previous certificate and logs an error; the next change that fits is installed', async () => {
    const current = (await call(svc.url, { ca })).serial!;
    const third = await pki.issue('third');
    const failedBefore = (await metric('ingest_tls_reloads_total{result="failed"}')) ?? 0;
    // The certificate is replaced, its key is not (yet): the pair does not belong together.
    replace(live.certFile, third.certFile);
    await until('the failed reload to be counted', async () =>
      (await metric('ingest_tls_reloads_total{result="failed"}'))! > failedBefore ? true : undefined,
    );
    expect((await call(svc.url, { ca })).serial).toBe(current);
    const errors = logged('TLS certificate not reloaded: new connections keep the previous certificate');
    expect(errors.at(-1)).toMatchObject({ level: 'error', code: 'INGEST_TLS_KEY_MISMATCH', setting: 'INGEST_TLS_KEY_FILE', serial: current });
    const keyLines = readFileSync(third.keyFile, 'utf8')
      .split('\n')
      .filter((l) => l.length > 20 && !l.startsWith('-----'));
    for (const l of keyLines) expect(logLines.join('\n').includes(l)).toBe(false);

    // A file half written (not PEM) is refused the same way.
    writeFileSync(`${live.keyFile}.new`, '-----BEGIN PRIVATE KEY-----\nnot a key\n');
    renameSync(`${live.keyFile}.new`, live.keyFile);
    await until('the second failed reload', async () => ((await metric('ingest_tls_reloads_total{result="failed"}'))! > failedBefore + 1 ? true : undefined));
    expect((await call(svc.url, { ca })).serial).toBe(current);

    // The key arrives: the pair fits and is installed.
    replace(live.keyFile, third.keyFile);
    await until('the third certificate', async () => ((await call(svc.url, { ca })).serial === third.serial ? true : undefined));
  });
});

describe('the TLS handshake has the header deadline (INGEST_HEADERS_TIMEOUT_MS)', () => {
  let pki: ScratchCa;
  let cert: IssuedCertificate;
  beforeAll(async () => {
    pki = await scratchCa();
    cert = await pki.issue('server');
  });
  afterAll(() => pki.remove());

  async function listen(server: HttpsServer): Promise<number> {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return (server.address() as net.AddressInfo).port;
  }

  it("a client that connects and never says hello is cut; control: with node's default deadline (120 s) it is not", async () => {
    const id = readTlsFiles({ certFile: cert.certFile, keyFile: cert.keyFile });
    const guarded = createHttpsServer({ headersTimeout: HEADERS_TIMEOUT_MS, ...httpsOptions(id, HEADERS_TIMEOUT_MS) }, (_q, s) => s.end());
    const { handshakeTimeout: _dropped, ...unguardedOptions } = httpsOptions(id, HEADERS_TIMEOUT_MS);
    const unguarded = createHttpsServer({ headersTimeout: HEADERS_TIMEOUT_MS, ...unguardedOptions }, (_q, s) => s.end());
    try {
      const [gp, up] = [await listen(guarded), await listen(unguarded)];
      const [cut, kept] = await Promise.all([closedAfter(net.connect(gp, '127.0.0.1'), 4000), closedAfter(net.connect(up, '127.0.0.1'), 4000)]);
      expect(cut).toBeDefined();
      expect(cut!).toBeLessThan(HEADERS_TIMEOUT_MS + 1500);
      expect(kept).toBeUndefined();
    } finally {
      guarded.close();
      unguarded.close();
    }
  });

  it('on ingest itself: a silent client is cut at the deadline, and so is one trickling header bytes after the handshake', async () => {
    const env = envFor({ INGEST_TLS_CERT_FILE: cert.certFile, INGEST_TLS_KEY_FILE: cert.keyFile });
    const svc = await startIngest(loadIngestConfig(env), {
      log: quietLogger,
      tokenKeys: { kind: 'file', dir: mkdtempSync(path.join(tmpdir(), 'ingest-keys-')) },
    });
    try {
      const port = new URL(svc.url).port;
      const silent = await closedAfter(net.connect(Number(port), '127.0.0.1'), 4000);
      expect(silent).toBeDefined();
      expect(silent!).toBeLessThan(HEADERS_TIMEOUT_MS + 1500);
      const sock = tls.connect({ host: '127.0.0.1', port: Number(port), ca: readFileSync(pki.ca.certFile) });
      await new Promise<void>((r, j) => sock.once('secureConnect', r).once('error', j));
      sock.write('POST /v1/batches HTTP/1.1\r\nHost: x\r\n');
      const trickle = setInterval(() => sock.writable && sock.write('X'), 200);
      const t = await closedAfter(sock, 6000);
      clearInterval(trickle);
      expect(t).toBeDefined();
      expect(t!).toBeLessThan(HEADERS_TIMEOUT_MS + 2000);
    } finally {
      await svc.close();
    }
  });
});
