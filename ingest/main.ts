/**
 * `npm run ingest`: one stateless ingest worker. Any number run side by side behind a load balancer;
 * none keeps state a request depends on (the day secrets live in a directory they share).
 *
 * SIGTERM/SIGINT: stop accepting, finish in-flight batches within INGEST_SHUTDOWN_DRAIN_MS, flush and
 * disconnect the producer, exit 0. A batch is answered 200 only after Kafka acknowledged it, so
 * nothing answered 200 can be lost by stopping; a batch cut off by the drain deadline gets no 200 and
 * the device sends it again.
 */
import { ConfigError, createLogger, type Level } from '../runtime/index.ts';
import { isoOfDay } from '../schemas/index.ts';
import { loadIngestConfig, sealingProblems, tlsProblems, zonesSharingMainCluster } from './config.ts';
import { startIngest } from './http.ts';
import { readTlsFiles, TlsFileError, tlsFilesOf } from './tls.ts';
import { TokenKeyWatch, type TokenKeysSpec } from './token-keys.ts';

async function main(): Promise<void> {
  let cfg;
  try {
    cfg = loadIngestConfig();
    // Sealing fails closed like residency (the topic plan reads the same settings without needing a key store),
    // and so does encryption in transit: HTTPS, or plain HTTP only behind INGEST_UNSAFE_PLAINTEXT_HTTP.
    const problems = [...sealingProblems(cfg), ...tlsProblems(cfg)];
    if (problems.length) throw new ConfigError(problems);
    // A certificate or key file that cannot be used stops the start here, like a bad setting (startIngest reads them again).
    const tlsFiles = tlsFilesOf(cfg);
    if (tlsFiles) readTlsFiles(tlsFiles);
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`ingest: ${e.message}\n`);
      process.exit(2);
    }
    if (e instanceof TlsFileError) {
      process.stderr.write(`ingest: invalid configuration: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  const log = createLogger({ service: 'ingest', level: cfg.INGEST_LOG_LEVEL as Level, logPersonalData: cfg.INGEST_DEBUG_LOG_PERSONAL_DATA });
  if (cfg.INGEST_UNSAFE_ACK_BEFORE_PRODUCE) log.warn('UNSAFE: INGEST_UNSAFE_ACK_BEFORE_PRODUCE is on; batches are answered 200 before Kafka acknowledged them');
  if (cfg.INGEST_UNSAFE_LINKABLE)
    log.warn('UNSAFE: INGEST_UNSAFE_LINKABLE is on; records keep exact timestamps and batch order, so the topics can be joined back to devices');
  if (cfg.INGEST_UNSAFE_UNSEALED) log.warn('UNSAFE: INGEST_UNSAFE_UNSEALED is on; personal records are written in clear, keyed by the device identity');
  if (cfg.INGEST_UNSAFE_PLAINTEXT_HTTP && !tlsFilesOf(cfg))
    log.warn('UNSAFE: INGEST_UNSAFE_PLAINTEXT_HTTP is on; devices reach ingest over plain HTTP, unencrypted (development only, policy 4.1)');
  if (cfg.INGEST_UNSAFE_PLAINTEXT_HTTP && tlsFilesOf(cfg))
    log.warn('INGEST_UNSAFE_PLAINTEXT_HTTP is ignored: INGEST_TLS_CERT_FILE and INGEST_TLS_KEY_FILE are set, ingest serves HTTPS only');
  if (cfg.INGEST_DEBUG_LOG_PERSONAL_DATA) log.warn('INGEST_DEBUG_LOG_PERSONAL_DATA is on: logs may contain personal data');
  // Without the switch, a zone bound by residency with no cluster of its own stopped loadIngestConfig above.
  const sharing = zonesSharingMainCluster(cfg);
  if (sharing.length > 0) {
    log.warn('INGEST_ZONES_SHARE_MAIN_CLUSTER is on: personal data of residency zones goes to the main cluster (development/test only, policy section 6)', {
      zones: sharing.join(','),
    });
  }

  const tokenKeys: TokenKeysSpec = { kind: 'file', dir: cfg.INGEST_TOKEN_KEY_DIR, mode: cfg.INGEST_TOKEN_KEYS_MODE };
  let svc;
  try {
    svc = await startIngest(cfg, { log, tokenKeys });
  } catch (e) {
    process.stderr.write(`ingest: cannot start: ${(e as Error).message}\n`);
    process.exit(1);
  }

  // Destroy day secrets whose grace has passed (ARCHITECTURE.md principle 3): after that nobody can link a
  // daily token back to a device. Workers refuse events of such days on their own (`too_late`), and
  // refuse an expired secret even when it is still on disk. In read-only mode the outside rotation
  // destroys them and the sweep only reports one it is late with. The sweep never throws: a failed
  // unlink used to end the process at start or an hour later.
  const keys = new TokenKeyWatch(tokenKeys);
  const start = keys.status(Date.now());
  const iso = (d: number | undefined) => (d === undefined ? 'none' : isoOfDay(d));
  log.info('day secrets', { mode: keys.mode, dir: cfg.INGEST_TOKEN_KEY_DIR, oldest: iso(start.oldestDay), newest: iso(start.newestDay) });
  if (keys.mode === 'read-only' && !start.todayReadable) {
    log.warn(
      'no day secret for today in the read-only key directory: /readyz stays false until the rotation provides it',
      start.errors.length ? { errors: start.errors.join('; ') } : {},
    );
  }
  const rotation = setInterval(() => keys.sweep(Date.now(), log), 3_600_000).unref();
  keys.sweep(Date.now(), log);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    clearInterval(rotation);
    if (cfg.INGEST_UNSAFE_SKIP_DRAIN) {
      log.warn('UNSAFE: INGEST_UNSAFE_SKIP_DRAIN is on; exiting without draining', { signal });
      process.exit(0);
    }
    log.info('stopping', { signal });
    svc.close().then(
      ({ drained }) => process.exit(drained ? 0 : 1),
      (e: unknown) => {
        log.error('stop failed', {}, e);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

void main();
