/**
 * `npm run answers`: the differentially private answers as a small HTTPS service, so that analysts who
 * should see noisy answers only never hold a ClickHouse credential (aggregator/README.md, "Privacy of
 * the answers": whoever holds the analyst credential can read the released views exactly). The service
 * holds a ClickHouse credential of its own, given with the `ANALYST_*` connection settings: the `answers`
 * user, which reads the released views and appends to the privacy ledger (ANSWERS_LEDGER_DATABASE) and
 * nothing else (stack/clickhouse-users.ts; deploy/compose/clickhouse/users.d/answers.xml). People hold a
 * bearer token each, and the ledger keeps one budget per person, named by the token's entry, never by
 * the request.
 *
 *   POST /v1/answers   Authorization: Bearer <token>   {"args": ["dau", "--from", "2026-11-01", ...]}
 *     200 {analyst, epsilon, spent_today, daily_epsilon, repeated, columns, rows}
 *     400 bad question, 401 unknown token, 403 --exact (not served here), 429 budget spent,
 *     503 ClickHouse failed; every error is {code, message}.
 *   GET /healthz (alive), GET /readyz (ClickHouse answers and the ledger exists), GET /metrics (the
 *   certificate's expiry and reloads, answers_tls_*; the token list's reloads and size, answers_tokens_*)
 *
 * HTTPS with ANSWERS_TLS_CERT_FILE / ANSWERS_TLS_KEY_FILE (runtime/tls.ts, re-read when they change);
 * without them the service refuses to start unless ANSWERS_UNSAFE_PLAINTEXT_HTTP=true (development).
 * ANSWERS_TOKENS_FILE lists `name sha256hex` per line (the SHA-256 of each person's token; `#` starts
 * a comment): the service keeps no token itself. The file is re-read when it changes (`TokenList`, the
 * same look at the file's metadata as runtime/tls.ts's reloader), so revoking a person's token is an
 * edit of the file, not a restart; a new file that does not parse keeps the previous list, logs an
 * error and counts `answers_tokens_reloads_total{result="failed"}`. It answers only what
 * `runPrivateReport` answers.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Registry } from 'prom-client';
import { ConfigError, defineSettings, loadConfig, type ConfigOf } from '../runtime/config.ts';
import { fileStamp, StableChangeWatch } from '../runtime/file-watch.ts';
import { createLogger, type Logger } from '../runtime/log.ts';
import {
  httpsOptions,
  readTlsFiles,
  TlsFileError,
  tlsFilesOf,
  tlsMetricNames,
  TlsReloader,
  tlsSettingProblems,
  type TlsFiles,
  type TlsIdentity,
} from '../runtime/tls.ts';
import { analystSettings, analystStoreOptions, withAnalystPassword, type AnalystConfig } from './analyst-config.ts';
import { AggregatorError, QueryArgumentError } from './errors.ts';
import { privateColumns, runPrivateReport } from './private-query.ts';
import { parseCommandLine, sqlString } from './query.ts';
import type { LedgerSource } from './private-query.ts';

export const answersSettings = defineSettings({
  ANSWERS_HOST: { kind: 'string', default: '127.0.0.1', doc: 'Address the answer service listens on.' },
  ANSWERS_PORT: { kind: 'int', min: 0, max: 65535, default: 18095, doc: 'Port of POST /v1/answers, /healthz, /readyz and /metrics (0 = any free port).' },
  ANSWERS_TLS_CERT_FILE: {
    kind: 'string',
    default: '',
    doc: 'PEM certificate chain the service serves HTTPS with (with ANSWERS_TLS_KEY_FILE); re-read when it changes. Without both files the service refuses to start, unless ANSWERS_UNSAFE_PLAINTEXT_HTTP=true.',
  },
  ANSWERS_TLS_KEY_FILE: { kind: 'string', default: '', doc: 'Unencrypted PEM private key of ANSWERS_TLS_CERT_FILE (a secret: mode 0600).' },
  ANSWERS_UNSAFE_PLAINTEXT_HTTP: {
    kind: 'bool',
    default: false,
    doc: 'DEVELOPMENT ONLY: serve plain HTTP without certificate files (bearer tokens and answers in clear). Ignored when both TLS files are set.',
  },
  ANSWERS_LEDGER_DATABASE: {
    kind: 'string',
    pattern: /^$|^[A-Za-z_][A-Za-z0-9_]{0,62}$/,
    default: '',
    doc: 'Database of the privacy ledger; empty = ANALYST_DATABASE. Deployments give the service a ledger of its own that the analyst cannot write (`analytics_ledger`: compose, deploy/k8s/answers.yaml, and the secured local stack, stack/clickhouse-users.ts).',
  },
  ANSWERS_TOKENS_FILE: {
    kind: 'string',
    default: '',
    doc: 'File of `name sha256hex` lines: each analyst and the SHA-256 of their bearer token (`printf %s "$TOKEN" | sha256sum`); re-read when it changes (a file that does not parse keeps the previous list). Required.',
  },
});

export type AnswersConfig = ConfigOf<typeof answersSettings> & AnalystConfig;

export function loadAnswersConfig(env: NodeJS.ProcessEnv = process.env): AnswersConfig {
  const cfg = withAnalystPassword(loadConfig({ ...answersSettings, ...analystSettings }, { prefixes: ['ANSWERS_', 'ANALYST_'], env }) as AnswersConfig);
  const problems = tlsSettingProblems('ANSWERS', cfg, 'analysts must reach the answer service (bearer tokens, answers)');
  if (!cfg.ANSWERS_TOKENS_FILE) problems.push('ANSWERS_TOKENS_FILE is required: without it nobody could be told apart, and the budget is per person');
  if (problems.length) throw new ConfigError(problems);
  return cfg;
}

/** `name sha256hex` lines -> hash -> name. Errors name the line, never a hash. */
export function parseTokens(text: string, file = 'ANSWERS_TOKENS_FILE'): Map<string, string> {
  const out = new Map<string, string>();
  const problems: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) return;
    const m = /^([A-Za-z0-9._@-]{1,64})\s+([0-9a-f]{64})$/.exec(line);
    if (!m) return problems.push(`${file} line ${i + 1}: expected "name sha256hex"`);
    if (out.has(m[2]!)) return problems.push(`${file} line ${i + 1}: a token already given to ${out.get(m[2]!)}`);
    if ([...out.values()].includes(m[1]!)) return problems.push(`${file} line ${i + 1}: ${m[1]} listed twice`);
    out.set(m[2]!, m[1]!);
  });
  if (problems.length) throw new ConfigError(problems);
  if (out.size === 0) throw new ConfigError([`${file}: no analyst listed`]);
  return out;
}

export const sha256Hex = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

/** Names of the answer service's own metrics: one list for the service that registers them and for the manifest checks of the alert rules. */
export const ANSWERS_TOKEN_METRICS = { reloads: 'answers_tokens_reloads_total', listed: 'answers_tokens_listed' } as const;

/**
 * Every metric series the answer service exports: its token list's (always) and its certificate's
 * (runtime/tls.ts, once it serves HTTPS). tools/manifest-check.ts checks the alert rules against it.
 */
export function answersMetricNames(): string[] {
  return [...Object.values(ANSWERS_TOKEN_METRICS), ...Object.values(tlsMetricNames('ANSWERS'))];
}

export interface TokenListOptions {
  log: Logger;
  registry: Registry;
  /** How often the file's metadata is looked at. @default RELOAD_CHECK_MS (runtime/file-watch.ts) */
  checkMs?: number;
}

/**
 * The token list of ANSWERS_TOKENS_FILE, re-read when the file changes. As runtime/tls.ts's reloader
 * does, a change must hold for one look before the file is read, so a file being written is not read
 * half way; a new file that does not parse (or cannot be read, or lists nobody) is not installed: the
 * previous list stays, an error naming the line (never a hash) is logged, and
 * `answers_tokens_reloads_total{result="failed"}` counts it. The next change is tried again.
 */
export class TokenList {
  private readonly watch: StableChangeWatch | undefined;
  private list: ReadonlyMap<string, string>;
  private readonly reloads: Counter<'result'>;

  constructor(
    first: ReadonlyMap<string, string>,
    /** The file the list was read from, or undefined for a fixed list (nothing to watch). */
    private readonly file: string | undefined,
    private readonly opts: TokenListOptions,
    /** The file's stamp when `first` was read (`TokenList.read`); taken now when not given. */
    stamp?: string,
  ) {
    this.list = first;
    this.watch = file
      ? new StableChangeWatch(
          () => fileStamp(file),
          () => this.reload(),
          stamp ?? fileStamp(file),
        )
      : undefined;
    const registers = [opts.registry];
    this.reloads = new Counter({
      name: ANSWERS_TOKEN_METRICS.reloads,
      help: 'Re-reads of ANSWERS_TOKENS_FILE after it changed, by result (failed: the previous token list is still used)',
      labelNames: ['result'],
      registers,
    });
    this.reloads.inc({ result: 'ok' }, 0);
    this.reloads.inc({ result: 'failed' }, 0);
    const size = () => this.list.size;
    new Gauge({
      name: ANSWERS_TOKEN_METRICS.listed,
      help: 'Analysts in the token list in use',
      registers,
      collect() {
        this.set(size());
      },
    });
  }

  /** Reads and parses a tokens file, with the stamp taken just before (a change after it is a change to reload). */
  static read(file: string): { tokens: Map<string, string>; stamp: string } {
    const stamp = fileStamp(file);
    return { tokens: parseTokens(readFileSync(file, 'utf8'), 'ANSWERS_TOKENS_FILE'), stamp };
  }

  /** The analyst a token belongs to in the list in use, or undefined. */
  analystOf(token: string): string | undefined {
    return this.list.get(sha256Hex(token));
  }

  get size(): number {
    return this.list.size;
  }

  start(): this {
    this.watch?.start(this.opts.checkMs);
    return this;
  }

  stop(): void {
    this.watch?.stop();
  }

  /** One look at the file; re-reads it when a change has held since the previous look. */
  check(): void {
    this.watch?.check();
  }

  /** Reads the file now and uses the new list, or keeps the current one and logs why not. */
  reload(): boolean {
    if (!this.file) return false;
    let next: Map<string, string>;
    try {
      next = parseTokens(readFileSync(this.file, 'utf8'), 'ANSWERS_TOKENS_FILE');
    } catch (e) {
      this.reloads.inc({ result: 'failed' });
      const reason = e instanceof ConfigError ? e.problems.join('; ') : `cannot read it (${(e as NodeJS.ErrnoException).code ?? 'error'})`;
      this.opts.log.error('token list not reloaded: the previous list stays in use', { file: this.file, reason, analysts: this.list.size });
      return false;
    }
    const before = new Set(this.list.values());
    const after = new Set(next.values());
    this.list = next;
    this.reloads.inc({ result: 'ok' });
    // Names only (never a hash): who was added and who lost access.
    this.opts.log.info('token list reloaded', {
      file: this.file,
      analysts: next.size,
      added: [...after].filter((n) => !before.has(n)).join(','),
      removed: [...before].filter((n) => !after.has(n)).join(','),
    });
    return true;
  }
}

const STATUS: Record<string, number> = {
  AGG_BAD_ARGUMENT: 400,
  AGG_BAD_DAY: 400,
  AGG_BAD_DIMENSION: 400,
  AGG_BAD_EPSILON: 400,
  AGG_UNAUTHORIZED: 401,
  AGG_EXACT_REFUSED: 403,
  AGG_PRIVACY_BUDGET_SPENT: 429,
};

export interface RunningAnswers {
  url: string;
  server: Server;
  /** Watches the certificate files when the service serves HTTPS. */
  tls: TlsReloader | undefined;
  /** The token list in use (re-read from `tokensFile` when that was given). */
  tokens: TokenList;
  close(): Promise<void>;
}

export interface AnswerServiceOptions {
  /** HTTPS with this pair (read by `readTlsFiles`), watched for changes; without it plain HTTP. */
  tls?: { files: TlsFiles; identity: TlsIdentity };
  /** The privacy ledger's database when it is not the views database (ANSWERS_LEDGER_DATABASE). */
  ledgerDatabase?: string;
  log?: Logger;
  /** Deadline of the TLS handshake and the request headers. @default 10000 */
  headersTimeoutMs?: number;
  /**
   * The file `tokens` was read from (ANSWERS_TOKENS_FILE), re-read when it changes (`TokenList`); with
   * `tokensStamp`, its metadata when it was read. Without it the list is fixed.
   */
  tokensFile?: string;
  tokensStamp?: string;
  /** How often the tokens file is looked at. @default RELOAD_CHECK_MS */
  tokensCheckMs?: number;
  /**
   * TESTS ONLY (the negative control of the reload): false reads the tokens file at start only, as the
   * service did before, so a revoked token keeps working until a restart. @default true
   */
  reloadTokens?: boolean;
}

/** The files of ANSWERS_TLS_CERT_FILE / ANSWERS_TLS_KEY_FILE read and checked (throws TlsFileError, code ANSWERS_TLS_*), or undefined for plain HTTP. */
export function answersTls(cfg: Pick<AnswersConfig, 'ANSWERS_TLS_CERT_FILE' | 'ANSWERS_TLS_KEY_FILE'>): AnswerServiceOptions['tls'] {
  const files = tlsFilesOf('ANSWERS', cfg);
  return files ? { files, identity: readTlsFiles('ANSWERS', files) } : undefined;
}

export async function startAnswerService(
  cfg: Pick<AnswersConfig, 'ANSWERS_HOST' | 'ANSWERS_PORT'>,
  tokens: ReadonlyMap<string, string>,
  store: LedgerSource,
  opts: AnswerServiceOptions = {},
): Promise<RunningAnswers> {
  const log = opts.log ?? createLogger({ service: 'answers', level: 'info' });
  const registry = new Registry();
  const tokenList = new TokenList(
    tokens,
    opts.reloadTokens === false ? undefined : opts.tokensFile,
    {
      log,
      registry,
      ...(opts.tokensCheckMs !== undefined ? { checkMs: opts.tokensCheckMs } : {}),
    },
    opts.tokensStamp,
  );
  const headersTimeoutMs = opts.headersTimeoutMs ?? 10_000;
  const send = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
    res.end(text);
  };
  const fail = (res: ServerResponse, code: string, message: string, status = STATUS[code] ?? 503) => send(res, status, { code, message });

  const readBody = (req: IncomingMessage): Promise<string> =>
    new Promise((resolve, reject) => {
      let size = 0;
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > 16_384) reject(new QueryArgumentError('AGG_BAD_ARGUMENT', 'request body over 16 KiB'));
        else chunks.push(c);
      });
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      req.on('error', reject);
    });

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path === '/healthz' && req.method === 'GET') return send(res, 200, { ok: true });
    if (path === '/readyz' && req.method === 'GET') {
      // Ready when ClickHouse answers and the ledger exists: without it every question is refused.
      const db = opts.ledgerDatabase || store.database;
      try {
        const [{ n } = { n: 0 }] = await store.query<{ n: number | string }>(
          `SELECT count() AS n FROM system.tables WHERE database = ${sqlString(db)} AND name = 'privacy_ledger'`,
        );
        return Number(n) > 0 ? send(res, 200, { ok: true }) : fail(res, 'AGG_NO_LEDGER', `${db}.privacy_ledger does not exist`, 503);
      } catch {
        return fail(res, 'AGG_SINK_QUERY_FAILED', 'ClickHouse does not answer', 503);
      }
    }
    if (path === '/metrics' && req.method === 'GET') {
      const text = await registry.metrics();
      res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' });
      return void res.end(text);
    }
    if (path !== '/v1/answers') return fail(res, 'NOT_FOUND', 'not found: POST /v1/answers', 404);
    if (req.method !== 'POST') return fail(res, 'METHOD', 'use POST', 405);
    const auth = /^Bearer (\S{16,512})$/.exec(req.headers.authorization ?? '');
    const analyst = auth ? tokenList.analystOf(auth[1]!) : undefined;
    if (analyst === undefined) return fail(res, 'AGG_UNAUTHORIZED', 'unknown or missing bearer token');
    let args: unknown;
    try {
      args = (JSON.parse(await readBody(req)) as { args?: unknown }).args;
    } catch (e) {
      return fail(res, 'AGG_BAD_ARGUMENT', e instanceof AggregatorError ? e.message : 'body must be JSON: {"args": ["dau", "--from", ...]}');
    }
    if (!Array.isArray(args) || !args.every((a) => typeof a === 'string'))
      return fail(res, 'AGG_BAD_ARGUMENT', 'body must be JSON: {"args": ["dau", "--from", ...]}');
    let parsed: ReturnType<typeof parseCommandLine>;
    try {
      parsed = parseCommandLine(args);
    } catch (e) {
      if (e instanceof AggregatorError) return fail(res, e.code, e.message);
      throw e;
    }
    if (parsed.mode.exact)
      return fail(res, 'AGG_EXACT_REFUSED', 'exact answers are not served here: they belong to the privileged role, which queries ClickHouse itself');
    try {
      const a = await runPrivateReport(store, parsed.req, parsed.mode.epsilon, {
        analyst,
        ...(opts.ledgerDatabase ? { ledgerDatabase: opts.ledgerDatabase } : {}),
      });
      return send(res, 200, {
        analyst: a.analyst,
        epsilon: a.epsilon,
        spent_today: a.spentToday,
        daily_epsilon: a.dailyEpsilon,
        repeated: a.repeated,
        columns: privateColumns(parsed.req),
        rows: a.rows,
      });
    } catch (e) {
      if (e instanceof AggregatorError) return fail(res, e.code, e.message.split('\n', 1)[0]!);
      throw e;
    }
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) fail(res, 'AGG_INTERNAL', `answer service error: ${(e as Error).message}`, 500);
    });
  };
  const http = { headersTimeout: headersTimeoutMs, requestTimeout: 60_000 };
  let reloader: TlsReloader | undefined;
  let server: Server;
  if (opts.tls) {
    const https = createHttpsServer({ ...http, ...httpsOptions(opts.tls.identity, headersTimeoutMs) }, onRequest);
    reloader = new TlsReloader(https, opts.tls.files, opts.tls.identity, { log, registry, prefix: 'ANSWERS' });
    server = https;
  } else {
    server = createServer(http, onRequest);
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.ANSWERS_PORT, cfg.ANSWERS_HOST, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  reloader?.start();
  tokenList.start();
  return {
    url: `${opts.tls ? 'https' : 'http'}://${cfg.ANSWERS_HOST}:${port}`,
    server,
    tls: reloader,
    tokens: tokenList,
    async close() {
      reloader?.stop();
      tokenList.stop();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

async function main(): Promise<void> {
  let cfg: AnswersConfig;
  let tokens: { tokens: Map<string, string>; stamp: string };
  let tls: AnswerServiceOptions['tls'];
  try {
    cfg = loadAnswersConfig();
    // A certificate or key file that cannot be used stops the start, like a bad setting.
    tls = answersTls(cfg);
    tokens = TokenList.read(cfg.ANSWERS_TOKENS_FILE);
  } catch (e) {
    const msg =
      e instanceof ConfigError
        ? e.problems.join('\n  ')
        : e instanceof TlsFileError
          ? `invalid configuration: ${e.message}`
          : `ANSWERS_TOKENS_FILE: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
    process.stderr.write(`answers: ${msg}\n`);
    process.exit(2);
  }
  const log = createLogger({ service: 'answers', level: 'info' });
  if (!tls) log.warn('UNSAFE: ANSWERS_UNSAFE_PLAINTEXT_HTTP is on; bearer tokens and answers cross the network in clear (development only, policy 4.1)');
  else if (cfg.ANSWERS_UNSAFE_PLAINTEXT_HTTP)
    log.warn('ANSWERS_UNSAFE_PLAINTEXT_HTTP is ignored: ANSWERS_TLS_CERT_FILE and ANSWERS_TLS_KEY_FILE are set, the service serves HTTPS only');
  if (cfg.ANALYST_CLICKHOUSE_USER === 'analyst')
    log.warn('the answer service connects as the analyst user: give it its own user (answers), the analyst credential is the privileged, exact path');
  const { openStore } = await import('./store-open.ts');
  const store = await openStore(analystStoreOptions(cfg));
  const svc = await startAnswerService(cfg, tokens.tokens, store, {
    ...(tls ? { tls } : {}),
    ledgerDatabase: cfg.ANSWERS_LEDGER_DATABASE,
    log,
    tokensFile: cfg.ANSWERS_TOKENS_FILE,
    tokensStamp: tokens.stamp,
  });
  process.stdout.write(
    `answers: ${svc.url}/v1/answers for ${tokens.tokens.size} analysts (ClickHouse as ${cfg.ANALYST_CLICKHOUSE_USER}, database ${cfg.ANALYST_DATABASE})\n`,
  );
  const stop = () => {
    svc.close().then(
      () => store.close().then(() => process.exit(0)),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e: unknown) => {
    process.stderr.write(`answers: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  });
}
