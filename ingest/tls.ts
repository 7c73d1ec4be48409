/**
 * Ingest terminates TLS itself (policy 4.1: devices reach it encrypted; README, "TLS"). The work is
 * runtime/tls.ts, shared with the answer service; this file binds it to ingest's names: the settings
 * INGEST_TLS_CERT_FILE / INGEST_TLS_KEY_FILE, the error codes INGEST_TLS_*, and the metrics
 * `ingest_tls_reloads_total`, `ingest_tls_certificate_expiry_seconds`, `ingest_tls_handshake_failures_total`.
 * http.ts serves node:https with `httpsOptions` and installs a changed pair with `TlsReloader`; a pair
 * that cannot be used is not installed (the old one stays, an error is logged and counted).
 *
 * Errors name the setting and the file, never what is in it: the key file is a secret.
 */
import type { Server as HttpsServer } from 'node:https';
import {
  readTlsFiles as readTlsFilesOf,
  TlsFileError as RuntimeTlsFileError,
  TlsReloader as RuntimeTlsReloader,
  TLS_ERROR_KINDS,
  tlsFilesOf as tlsFilesOfPrefix,
  type TlsFiles,
  type TlsIdentity,
  type TlsReloadOptions as RuntimeTlsReloadOptions,
} from '../runtime/tls.ts';

export { httpsOptions, RELOAD_CHECK_MS, type TlsFiles, type TlsIdentity } from '../runtime/tls.ts';

/**
 * Why a certificate or key file cannot be used. These end a start (exit 2) or a reload (old pair kept),
 * never a request, so they are not in errors.ts, whose every code is an HTTP status.
 */
export const TLS_ERROR_CODES = TLS_ERROR_KINDS.map((k) => `INGEST_TLS_${k}` as const);
export type TlsErrorCode = (typeof TLS_ERROR_CODES)[number];
export type TlsSetting = 'INGEST_TLS_CERT_FILE' | 'INGEST_TLS_KEY_FILE';

/** runtime/tls.ts's error with ingest's codes (`instanceof` holds for both). */
export const TlsFileError = RuntimeTlsFileError as typeof RuntimeTlsFileError<'INGEST'>;
export type TlsFileError = RuntimeTlsFileError<'INGEST'>;

export function tlsFilesOf(cfg: { INGEST_TLS_CERT_FILE: string; INGEST_TLS_KEY_FILE: string }): TlsFiles | undefined {
  return tlsFilesOfPrefix('INGEST', cfg);
}

/** Reads and checks both files (runtime/tls.ts); throws TlsFileError with an INGEST_TLS_* code. */
export function readTlsFiles(files: TlsFiles, now = Date.now()): TlsIdentity {
  return readTlsFilesOf('INGEST', files, now);
}

export type TlsReloadOptions = Omit<RuntimeTlsReloadOptions, 'prefix'>;

/** runtime/tls.ts's reloader with ingest's metric names. */
export class TlsReloader extends RuntimeTlsReloader {
  constructor(server: HttpsServer, files: TlsFiles, first: TlsIdentity, opts: TlsReloadOptions) {
    super(server, files, first, { ...opts, prefix: 'INGEST' });
  }
}
