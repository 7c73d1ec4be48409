// The answer service's start rules (answer-service.ts, runtime/tls.ts): HTTPS with both certificate
// files, or plain HTTP only behind ANSWERS_UNSAFE_PLAINTEXT_HTTP; a file that cannot be used stops the
// start with a typed error naming its setting, never its content. The process itself exits 2 with one line.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../runtime/config.ts';
import { TlsFileError } from '../runtime/tls.ts';
import { runScript } from '../testing/services.ts';
import { scratchCa, type IssuedCertificate, type ScratchCa } from '../testing/tls.ts';
import { answersTls, loadAnswersConfig, sha256Hex } from './answer-service.ts';

let pki: ScratchCa;
let a: IssuedCertificate;
let b: IssuedCertificate;
let tokensFile: string;
beforeAll(async () => {
  pki = await scratchCa();
  a = await pki.issue('answers-a');
  b = await pki.issue('answers-b');
  tokensFile = path.join(pki.dir, 'tokens');
  writeFileSync(tokensFile, `alice ${sha256Hex('a-token-of-alice-0123456789')}\n`, { mode: 0o600 });
});
afterAll(() => pki?.remove());

const problems = (env: Record<string, string>): string[] => {
  try {
    loadAnswersConfig({ ANSWERS_TOKENS_FILE: tokensFile, ...env });
    return [];
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
};

describe('loadAnswersConfig: TLS settings', () => {
  it('refuses no certificate files without the plaintext switch, and half a pair with or without it', () => {
    expect(problems({})).toEqual([expect.stringMatching(/ANSWERS_TLS_CERT_FILE and ANSWERS_TLS_KEY_FILE are empty.*ANSWERS_UNSAFE_PLAINTEXT_HTTP=true/)]);
    for (const plain of ['false', 'true']) {
      expect(problems({ ANSWERS_UNSAFE_PLAINTEXT_HTTP: plain, ANSWERS_TLS_CERT_FILE: a.certFile })).toEqual([
        expect.stringContaining('ANSWERS_TLS_KEY_FILE is empty'),
      ]);
      expect(problems({ ANSWERS_UNSAFE_PLAINTEXT_HTTP: plain, ANSWERS_TLS_KEY_FILE: a.keyFile })).toEqual([
        expect.stringContaining('ANSWERS_TLS_CERT_FILE is empty'),
      ]);
    }
  });

  it('negative controls: both files, or the plaintext switch alone, are accepted', () => {
    expect(problems({ ANSWERS_TLS_CERT_FILE: a.certFile, ANSWERS_TLS_KEY_FILE: a.keyFile })).toEqual([]);
    expect(problems({ ANSWERS_UNSAFE_PLAINTEXT_HTTP: 'true' })).toEqual([]);
  });
});

describe('answersTls: the certificate files', () => {
  it('reads a certificate with its own key (negative control of the refusals below)', () => {
    const tls = answersTls({ ANSWERS_TLS_CERT_FILE: a.certFile, ANSWERS_TLS_KEY_FILE: a.keyFile });
    expect(tls?.identity.serial).toBe(a.serial);
    expect(answersTls({ ANSWERS_TLS_CERT_FILE: '', ANSWERS_TLS_KEY_FILE: '' })).toBeUndefined();
  });

  it('refuses the key of another certificate, a missing file and a non-PEM file, naming the setting and never the key', () => {
    const refusal = (cert: string, key: string): TlsFileError => {
      try {
        answersTls({ ANSWERS_TLS_CERT_FILE: cert, ANSWERS_TLS_KEY_FILE: key });
      } catch (e) {
        if (e instanceof TlsFileError) return e;
        throw e;
      }
      throw new Error('expected a TlsFileError');
    };
    const mismatch = refusal(a.certFile, b.keyFile);
    expect([mismatch.code, mismatch.setting]).toEqual(['ANSWERS_TLS_KEY_MISMATCH', 'ANSWERS_TLS_KEY_FILE']);
    const keyBody = readFileSync(b.keyFile, 'utf8').split('\n')[1]!;
    expect(mismatch.message).not.toContain(keyBody);
    const missing = refusal('/nonexistent/answers.pem', a.keyFile);
    expect([missing.code, missing.setting]).toEqual(['ANSWERS_TLS_FILE_UNREADABLE', 'ANSWERS_TLS_CERT_FILE']);
    expect(refusal(a.certFile, a.certFile).code).toBe('ANSWERS_TLS_NOT_PEM');
  });
});

describe('npm run answers refuses to start', () => {
  it('without certificate files and without the switch: exit 2, one line naming the settings', async () => {
    const r = await runScript('aggregator/answer-service.ts', [], { ANSWERS_TOKENS_FILE: tokensFile });
    expect(r.code).toBe(2);
    expect(r.stderrLines).toEqual([expect.stringMatching(/^answers: TLS \(policy 4\.1\): ANSWERS_TLS_CERT_FILE and ANSWERS_TLS_KEY_FILE are empty/)]);
  });

  it('with a key of another certificate: exit 2, naming the key setting', async () => {
    const r = await runScript('aggregator/answer-service.ts', [], {
      ANSWERS_TOKENS_FILE: tokensFile,
      ANSWERS_TLS_CERT_FILE: a.certFile,
      ANSWERS_TLS_KEY_FILE: b.keyFile,
    });
    expect(r.code).toBe(2);
    expect(r.stderrLines).toEqual([expect.stringContaining(`answers: invalid configuration: ANSWERS_TLS_KEY_FILE=${b.keyFile}: the key does not belong`)]);
  });
});
