// A scratch CA in a temporary directory and the server certificates it signs (stack/tls.ts, openssl), for
// tests that run ingest over HTTPS: clients trust `ca.certFile`; every certificate has its own serial.
import { mkdtempSync, rmSync } from 'node:fs';
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
