// The TLS settings and files (ingest/tls.ts, README "TLS"): which combinations start, and each wrong file
// refused with a typed error naming its setting and path, never what is in the file.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { scratchCa, type IssuedCertificate, type ScratchCa } from '../testing/tls.ts';
import { tlsProblems } from './config.ts';
import { readTlsFiles, TlsFileError, type TlsErrorCode } from './tls.ts';

describe('tlsProblems', () => {
  const none = { INGEST_TLS_CERT_FILE: '', INGEST_TLS_KEY_FILE: '', INGEST_UNSAFE_PLAINTEXT_HTTP: false };
  it('refuses no TLS files without the plaintext switch, and half a pair with or without it', () => {
    expect(tlsProblems(none)).toEqual([expect.stringMatching(/INGEST_TLS_CERT_FILE and INGEST_TLS_KEY_FILE are empty.*INGEST_UNSAFE_PLAINTEXT_HTTP=true/)]);
    for (const plain of [false, true]) {
      expect(tlsProblems({ ...none, INGEST_UNSAFE_PLAINTEXT_HTTP: plain, INGEST_TLS_CERT_FILE: '/c' })).toEqual([
        expect.stringContaining('INGEST_TLS_KEY_FILE is empty'),
      ]);
      expect(tlsProblems({ ...none, INGEST_UNSAFE_PLAINTEXT_HTTP: plain, INGEST_TLS_KEY_FILE: '/k' })).toEqual([
        expect.stringContaining('INGEST_TLS_CERT_FILE is empty'),
      ]);
    }
  });
  it('negative controls: both files, or the plaintext switch alone, start', () => {
    expect(tlsProblems({ ...none, INGEST_TLS_CERT_FILE: '/c', INGEST_TLS_KEY_FILE: '/k' })).toEqual([]);
    expect(tlsProblems({ ...none, INGEST_UNSAFE_PLAINTEXT_HTTP: true })).toEqual([]);
    expect(tlsProblems({ INGEST_TLS_CERT_FILE: '/c', INGEST_TLS_KEY_FILE: '/k', INGEST_UNSAFE_PLAINTEXT_HTTP: true })).toEqual([]);
  });
});

describe('readTlsFiles', () => {
  let pki: ScratchCa;
  let a: IssuedCertificate;
  let b: IssuedCertificate;
  beforeAll(async () => {
    pki = await scratchCa();
    a = await pki.issue('a');
    b = await pki.issue('b');
  });
  afterAll(() => pki.remove());

  function refused(certFile: string, keyFile: string, now?: number): TlsFileError {
    try {
      readTlsFiles({ certFile, keyFile }, now);
    } catch (e) {
      if (e instanceof TlsFileError) return e;
      throw e;
    }
    throw new Error('expected a TlsFileError');
  }
  const keyLines = (f: string) =>
    readFileSync(f, 'utf8')
      .split('\n')
      .filter((l) => l.length > 20 && !l.startsWith('-----'));

  it('negative control: a certificate with its own key is read, with its serial and expiry', () => {
    const id = readTlsFiles({ certFile: a.certFile, keyFile: a.keyFile });
    expect(id.serial).toBe(a.serial);
    expect(id.notAfter.getTime()).toBeGreaterThan(Date.now());
    expect(id.subject).toContain('CN=localhost');
  });

  it('each wrong file: its code, its setting and path, nothing of the key', () => {
    const encrypted = path.join(pki.dir, 'encrypted.key');
    // A passphrase-protected copy (the passphrase through the environment, never on a command line).
    execFileSync('openssl', ['pkey', '-in', a.keyFile, '-out', encrypted, '-aes256', '-passout', 'env:TLS_TEST_PASSPHRASE'], {
      env: { PATH: process.env.PATH ?? '', TLS_TEST_PASSPHRASE: 'throwaway' },
    });
    const garbage = path.join(pki.dir, 'garbage.pem');
    writeFileSync(garbage, 'hello\n');
    const cases: Array<[string, string, TlsErrorCode, string, string]> = [
      [path.join(pki.dir, 'none.pem'), a.keyFile, 'INGEST_TLS_FILE_UNREADABLE', 'INGEST_TLS_CERT_FILE', 'cannot read it (ENOENT)'],
      [a.certFile, path.join(pki.dir, 'none.key'), 'INGEST_TLS_FILE_UNREADABLE', 'INGEST_TLS_KEY_FILE', 'cannot read it (ENOENT)'],
      [garbage, a.keyFile, 'INGEST_TLS_NOT_PEM', 'INGEST_TLS_CERT_FILE', 'no PEM certificate in it'],
      [a.keyFile, a.keyFile, 'INGEST_TLS_NOT_PEM', 'INGEST_TLS_CERT_FILE', 'no PEM certificate in it'],
      [a.certFile, a.certFile, 'INGEST_TLS_NOT_PEM', 'INGEST_TLS_KEY_FILE', 'no unencrypted PEM private key in it'],
      [a.certFile, encrypted, 'INGEST_TLS_NOT_PEM', 'INGEST_TLS_KEY_FILE', 'no unencrypted PEM private key in it'],
      [a.certFile, b.keyFile, 'INGEST_TLS_KEY_MISMATCH', 'INGEST_TLS_KEY_FILE', 'the key does not belong to the certificate'],
    ];
    for (const [cert, key, code, setting, says] of cases) {
      const e = refused(cert, key);
      expect({ code: e.code, setting: e.setting }).toEqual({ code, setting });
      expect(e.message).toContain(`${setting}=${setting === 'INGEST_TLS_CERT_FILE' ? cert : key}: ${says}`);
      for (const l of [...keyLines(a.keyFile), ...keyLines(b.keyFile)]) expect(e.message.includes(l)).toBe(false);
    }
  });

  it('an expired certificate is refused (a reload keeps the previous one)', () => {
    const e = refused(a.certFile, a.keyFile, Date.now() + 3 * 86_400_000);
    expect(e.code).toBe('INGEST_TLS_EXPIRED');
    expect(e.message).toMatch(/INGEST_TLS_CERT_FILE=.*: the certificate expired at \d{4}-/);
  });
});
