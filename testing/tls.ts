// A scratch CA in a temporary directory and the server certificates it signs (stack/tls.ts, openssl), for
// tests that run ingest over HTTPS: clients trust `ca.certFile`; every certificate has its own serial.
import { mkdtempSync, rmSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createCertificateAuthority, issueServerCertificate, type CertificateAuthority, type IssuedCertificate } from '../stack/tls.ts';

export type { CertificateAuthority, IssuedCertificate };

export interface ScratchCa {
  dir: string;
  ca: CertificateAuthority;
  /** A certificate for 127.0.0.1 and localhost, as `<dir>/<name>.pem` and `<dir>/<name>.key`. */
  issue(name: string, opts?: { hosts?: string[]; days?: number }): Promise<IssuedCertificate>;
  remove(): void;
}

export async function scratchCa(name = 'test-ca'): Promise<ScratchCa> {
  const dir = mkdtempSync(path.join(tmpdir(), 'tls-'));
  const ca = await createCertificateAuthority(path.join(dir, 'ca'), { name, days: 2 });
  return {
    dir,
    ca,
    issue: (certName, opts = {}) => issueServerCertificate(ca, { dir, name: certName, days: 2, ...opts }),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** One HTTP(S) request trusting `ca` (fetch cannot be given a CA): what a device with the project's CA sees. */
export function requestTrusting(
  url: string,
  opts: { ca?: Buffer | string; method?: string; headers?: Record<string, string>; body?: Buffer | string },
): Promise<{ status: number; headers: IncomingHttpHeaders; text: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(
      u,
      { method: opts.method ?? 'GET', headers: opts.headers ?? {}, ...(u.protocol === 'https:' && opts.ca ? { ca: opts.ca } : {}) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}
