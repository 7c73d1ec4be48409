/**
 * HTTPS for any service of the project that terminates TLS itself (ingest for devices, the answer
 * service for analysts; policy 4.1). A service names its settings by a prefix P: `<P>_TLS_CERT_FILE`
 * and `<P>_TLS_KEY_FILE` (the certificate chain and its key), `<P>_UNSAFE_PLAINTEXT_HTTP` (plain HTTP on
 * a development machine). This file checks those settings (`tlsSettingProblems`), reads and checks the
 * pair (`readTlsFiles`), gives the node:https server its options (`httpsOptions`) and watches both
 * files (`TlsReloader`): when they change, the new pair is checked and installed with
 * `server.setSecureContext`, which only new connections use, so open keep-alive connections carry on
 * with the certificate they shook hands with. A new pair that cannot be used (a file half written, a key
 * of another certificate, an expired certificate) is not installed: the old one stays, an error is
 * logged and `<p>_tls_reloads_total{result="failed"}` counts it.
 *
 * Errors name the setting and the file, never what is in it: the key file is a secret.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Server as HttpsServer, ServerOptions as HttpsOptions } from 'node:https';
import { createSecureContext } from 'node:tls';
import { Counter, Gauge, type Registry } from 'prom-client';
import { CodedError } from './errors.ts';
import { fileStamp, RELOAD_CHECK_MS, StableChangeWatch } from './file-watch.ts';
import type { Logger } from './log.ts';

/** What can be wrong with a certificate or key file; the code is `<P>_TLS_<kind>`. */
export const TLS_ERROR_KINDS = ['FILE_UNREADABLE', 'NOT_PEM', 'KEY_MISMATCH', 'EXPIRED', 'UNUSABLE'] as const;
export type TlsErrorKind = (typeof TLS_ERROR_KINDS)[number];

/**
 * Why a certificate or key file cannot be used. These end a start (exit 2) or a reload (old pair kept),
 * never a request.
 */
export class TlsFileError<P extends string = string> extends CodedError<`${P}_TLS_${TlsErrorKind}`> {
  override readonly name: string = 'TlsFileError';
  constructor(
    code: `${P}_TLS_${TlsErrorKind}`,
    /** The setting whose file is wrong. */
    readonly setting: `${P}_TLS_CERT_FILE` | `${P}_TLS_KEY_FILE`,
    message: string,
  ) {
    super(code, message);
  }
}

export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

/** A certificate chain and its key, checked to belong together, and what the logs and metrics show of it. */
export interface TlsIdentity {
  cert: Buffer;
  key: Buffer;
  /** Of the server certificate (the first of the chain), hex as node prints it. Not secret. */
  serial: string;
  subject: string;
  notAfter: Date;
  /** The files' metadata taken just before they were read: a change after it is a change to reload. */
  stamp: string;
}

/** The settings of one service's TLS, by its prefix P. */
export type TlsSettingsOf<P extends string> = { readonly [K in `${P}_TLS_CERT_FILE` | `${P}_TLS_KEY_FILE`]: string } & {
  readonly [K in `${P}_UNSAFE_PLAINTEXT_HTTP`]: boolean;
};

export function tlsFilesOf<P extends string>(prefix: P, cfg: { readonly [K in `${P}_TLS_CERT_FILE` | `${P}_TLS_KEY_FILE`]: string }): TlsFiles | undefined {
  const certFile = cfg[`${prefix}_TLS_CERT_FILE`];
  const keyFile = cfg[`${prefix}_TLS_KEY_FILE`];
  if (!certFile || !keyFile) return undefined;
  return { certFile, keyFile };
}

/**
 * The start rule: both files, or neither with `<P>_UNSAFE_PLAINTEXT_HTTP=true`; half a pair is refused
 * with or without the switch. `who` says who must be reached over HTTPS ("devices must reach ingest").
 */
export function tlsSettingProblems<P extends string>(prefix: P, cfg: TlsSettingsOf<P>, who: string): string[] {
  const certName = `${prefix}_TLS_CERT_FILE`;
  const keyName = `${prefix}_TLS_KEY_FILE`;
  const cert = cfg[`${prefix}_TLS_CERT_FILE`] !== '';
  const key = cfg[`${prefix}_TLS_KEY_FILE`] !== '';
  if (cert && !key) return [`TLS: ${certName} is set but ${keyName} is empty: give both files (certificate chain and its key)`];
  if (key && !cert) return [`TLS: ${keyName} is set but ${certName} is empty: give both files (certificate chain and its key)`];
  if (!cert && !cfg[`${prefix}_UNSAFE_PLAINTEXT_HTTP`]) {
    return [
      `TLS (policy 4.1): ${certName} and ${keyName} are empty: ${who} over HTTPS; ` +
        `give the certificate chain and key files, or ${prefix}_UNSAFE_PLAINTEXT_HTTP=true on a development machine`,
    ];
  }
  return [];
}

function readSetting<P extends string>(prefix: P, setting: `${P}_TLS_CERT_FILE` | `${P}_TLS_KEY_FILE`, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new TlsFileError<P>(`${prefix}_TLS_FILE_UNREADABLE`, setting, `${setting}=${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/**
 * Reads and checks both files: a PEM certificate first in the chain file, an unencrypted PEM private key
 * that belongs to it, not expired, and a pair OpenSSL accepts as a server identity. Throws TlsFileError,
 * whose code and setting carry the service's prefix.
 */
export function readTlsFiles<P extends string>(prefix: P, files: TlsFiles, now = Date.now()): TlsIdentity {
  const certName = `${prefix}_TLS_CERT_FILE` as const;
  const keyName = `${prefix}_TLS_KEY_FILE` as const;
  const stamp = signature(files);
  const cert = readSetting(prefix, certName, files.certFile);
  const key = readSetting(prefix, keyName, files.keyFile);
  const certAt = `${certName}=${files.certFile}`;
  const keyAt = `${keyName}=${files.keyFile}`;
  let x509: X509Certificate;
  try {
    if (!cert.includes('-----BEGIN CERTIFICATE-----')) throw new Error('no PEM block');
    x509 = new X509Certificate(cert);
  } catch {
    throw new TlsFileError<P>(`${prefix}_TLS_NOT_PEM`, certName, `${certAt}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)`);
  }
  let privateKey: KeyObject;
  try {
    if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key.toString('latin1'))) throw new Error('no PEM block');
    privateKey = createPrivateKey(key);
  } catch {
    // OpenSSL's message is left out on purpose: nothing derived from a key file reaches a log.
    throw new TlsFileError<P>(`${prefix}_TLS_NOT_PEM`, keyName, `${keyAt}: no unencrypted PEM private key in it`);
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new TlsFileError<P>(`${prefix}_TLS_KEY_MISMATCH`, keyName, `${keyAt}: the key does not belong to the certificate of ${certAt}`);
  }
  const notAfter = new Date(x509.validTo);
  if (notAfter.getTime() <= now) {
    throw new TlsFileError<P>(`${prefix}_TLS_EXPIRED`, certName, `${certAt}: the certificate expired at ${notAfter.toISOString()}`);
  }
  try {
    createSecureContext({ cert, key });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new TlsFileError<P>(`${prefix}_TLS_UNUSABLE`, certName, `${certAt} with ${keyAt}: OpenSSL refuses the pair (${code})`);
  }
  return { cert, key, serial: x509.serialNumber, subject: x509.subject.replace(/\n/g, ', '), notAfter, stamp };
}

/**
 * What the node:https server takes on top of the HTTP options: the identity, TLS 1.2 at least (node's
 * default, fixed here so a runtime flag cannot lower it), and a handshake deadline. The HTTP timeouts
 * only start once the handshake is done, and node's own handshake deadline is 120 s: a client that
 * connects and sends nothing would hold a connection that long. So the handshake gets the header
 * deadline, the whole of which a slow client may spend on it.
 */
export function httpsOptions(id: TlsIdentity, headersTimeoutMs: number): HttpsOptions {
  return { cert: id.cert, key: id.key, minVersion: 'TLSv1.2', handshakeTimeout: headersTimeoutMs };
}

export { RELOAD_CHECK_MS };

/** Both files' identity on disk (file-watch.ts): any change of either is a candidate reload. */
function signature(files: TlsFiles): string {
  return `${fileStamp(files.certFile)}|${fileStamp(files.keyFile)}`;
}

export interface TlsReloadOptions {
  log: Logger;
  registry: Registry;
  /** Upper-case prefix of the service's settings and error codes (`INGEST`); its metrics are `<prefix lower-cased>_tls_*`. */
  prefix: string;
  /** @default RELOAD_CHECK_MS */
  checkMs?: number;
}

/**
 * The TLS metrics a service with settings prefix P exports once it serves HTTPS (lower-cased prefix):
 * one list for the reloader that registers them and for the manifest checks of the alert rules.
 */
export function tlsMetricNames(prefix: string): { reloads: string; expiry: string; handshakeFailures: string } {
  const m = prefix.toLowerCase();
  return { reloads: `${m}_tls_reloads_total`, expiry: `${m}_tls_certificate_expiry_seconds`, handshakeFailures: `${m}_tls_handshake_failures_total` };
}

/**
 * Watches the certificate and key files of an https server and installs a changed pair for new
 * connections. A change must hold for one check before it is read, so a pair being written is not read
 * half way; a pair that still does not fit (the key replaced a check after the certificate) is refused,
 * logged, and read again at the next change.
 */
export class TlsReloader {
  private readonly watch: StableChangeWatch;
  private current: TlsIdentity;
  private readonly reloads: Counter<'result'>;

  constructor(
    private readonly server: HttpsServer,
    private readonly files: TlsFiles,
    first: TlsIdentity,
    private readonly opts: TlsReloadOptions,
  ) {
    // From when the first pair was read (a service may read it long before it listens), not from now.
    this.watch = new StableChangeWatch(
      () => signature(files),
      () => this.reload(),
      first.stamp,
    );
    this.current = first;
    const registers = [opts.registry];
    const p = opts.prefix;
    const names = tlsMetricNames(p);
    this.reloads = new Counter({
      name: names.reloads,
      help: `Certificate reloads after ${p}_TLS_CERT_FILE/${p}_TLS_KEY_FILE changed, by result (failed: the previous certificate is still served)`,
      labelNames: ['result'],
      registers,
    });
    this.reloads.inc({ result: 'ok' }, 0);
    this.reloads.inc({ result: 'failed' }, 0);
    const notAfter = () => Math.floor(this.current.notAfter.getTime() / 1000);
    new Gauge({
      name: names.expiry,
      help: 'Not-after time (unix seconds) of the certificate new connections get',
      registers,
      collect() {
        this.set(notAfter());
      },
    });
    const handshakeFailures = new Counter({
      name: names.handshakeFailures,
      help: 'Connections closed before a TLS session was set up (a plain-HTTP client, an untrusting client, a handshake past its deadline)',
      registers,
    });
    // Node destroys such a socket itself; without a listener nothing would show them.
    server.on('tlsClientError', () => handshakeFailures.inc());
  }

  /** The certificate new connections get. */
  get identity(): TlsIdentity {
    return this.current;
  }

  start(): this {
    this.watch.start(this.opts.checkMs);
    return this;
  }

  stop(): void {
    this.watch.stop();
  }

  /** One look at the files; reloads when a change has held since the previous look. */
  check(): void {
    this.watch.check();
  }

  /** Reads the files now and installs them for new connections, or keeps the current pair and logs why not. */
  reload(): boolean {
    let next: TlsIdentity;
    try {
      next = readTlsFiles(this.opts.prefix, this.files);
    } catch (e) {
      this.reloads.inc({ result: 'failed' });
      const why = e instanceof TlsFileError ? { code: e.code, setting: e.setting, reason: e.message } : { reason: 'unexpected error' };
      this.opts.log.error('TLS certificate not reloaded: new connections keep the previous certificate', { ...why, serial: this.current.serial });
      return false;
    }
    this.server.setSecureContext({ cert: next.cert, key: next.key, minVersion: 'TLSv1.2' });
    const previous = this.current;
    this.current = next;
    this.reloads.inc({ result: 'ok' });
    this.opts.log.info('TLS certificate reloaded: new connections get it, open ones keep theirs', {
      serial: next.serial,
      previous_serial: previous.serial,
      subject: next.subject,
      not_after: next.notAfter.toISOString(),
    });
    return true;
  }
}
