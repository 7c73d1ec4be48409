// Certificates for the local stack and its tests, made with the machine's openssl like the secured stack's
// CA and broker certificate (stack/README.md, "Secured mode"): a CA, and server certificates it signs for
// 127.0.0.1/localhost. Keys are written by openssl into files (mode 0600) and never pass through a command
// line or an output; only paths do. Each certificate gets a random 128-bit serial, so two certificates
// issued for the same name are told apart by a client (ingest's certificate reload test reads it).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { StackError } from './errors.ts';

const run = promisify(execFile);

/** A CA as two PEM files. */
export interface CertificateAuthority {
  certFile: string;
  keyFile: string;
}

/** A server certificate signed by a CA: PEM certificate, its PEM key, and its serial (hex, upper case, as node's X509Certificate shows it). */
export interface IssuedCertificate {
  certFile: string;
  keyFile: string;
  serial: string;
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args, { timeout: 60_000 });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') {
      throw new StackError('STACK_START_FAILED', 'openssl not found: install it (Debian: apt-get install -y openssl), needed to make TLS certificates');
    }
    throw new StackError('STACK_START_FAILED', `openssl ${args[0]} failed: ${(err.stderr ?? err.message).trim().split('\n').pop()}`);
  }
}

/** A fresh self-signed CA in `dir` (ca.pem, ca.key). */
export async function createCertificateAuthority(dir: string, opts: { name?: string; days?: number } = {}): Promise<CertificateAuthority> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = { certFile: path.join(dir, 'ca.pem'), keyFile: path.join(dir, 'ca.key') };
  const subject = `/CN=${opts.name ?? 'telemetry-local-stack-ca'}`;
  await openssl([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    ca.keyFile,
    '-out',
    ca.certFile,
    '-days',
    String(opts.days ?? 30),
    '-subj',
    subject,
  ]);
  chmodSync(ca.keyFile, 0o600);
  return ca;
}

/**
 * A server certificate for `hosts` (default 127.0.0.1 and localhost) signed by `ca`, written as
 * `<dir>/<name>.pem` and `<dir>/<name>.key`. The secured stack's broker certificate has the same shape
 * (subjectAltName, serverAuth); stack/secure.ts could issue it with this function.
 */
export async function issueServerCertificate(
  ca: CertificateAuthority,
  opts: { dir: string; name: string; hosts?: string[]; days?: number },
): Promise<IssuedCertificate> {
  const hosts = opts.hosts ?? ['127.0.0.1', 'localhost'];
  mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
  const base = path.join(opts.dir, opts.name);
  const out = { certFile: `${base}.pem`, keyFile: `${base}.key` };
  const csr = `${base}.csr`;
  const ext = `${base}.ext`;
  const serial = randomBytes(16);
  serial[0]! &= 0x7f; // a positive INTEGER of 16 bytes
  serial[0]! |= 0x10; // and no leading zero nibble, so the hex form is the same everywhere
  const san = hosts.map((h) => (/^[\d.]+$|:/.test(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
  try {
    await openssl([
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      out.keyFile,
      '-out',
      csr,
      '-subj',
      `/CN=${hosts.find((h) => !/^[\d.]+$|:/.test(h)) ?? hosts[0]}`,
    ]);
    chmodSync(out.keyFile, 0o600);
    writeFileSync(ext, `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n`);
    await openssl([
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      ca.certFile,
      '-CAkey',
      ca.keyFile,
      '-set_serial',
      `0x${serial.toString('hex')}`,
      '-out',
      out.certFile,
      '-days',
      String(opts.days ?? 30),
      '-extfile',
      ext,
    ]);
  } finally {
    rmSync(csr, { force: true });
    rmSync(ext, { force: true });
  }
  return { ...out, serial: serial.toString('hex').toUpperCase() };
}
