/**
 * Structured JSON logs, one object per line on stdout.
 *
 * Policy 4.1/1.1.4: logs are an operational channel that many people read, so they must never carry a
 * personal value. The logger therefore takes only a message and a flat record of *operational* fields
 * (counts, durations, codes, topic names). Payloads may be logged only through `personal()`, which is a
 * no-op unless the service was started with its clearly named debug switch
 * (e.g. INGEST_DEBUG_LOG_PERSONAL_DATA=true); those lines are tagged `"personal": true`.
 */

export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields & { err?: never }, err?: unknown): void;
  /** Logs a personal payload only when the debug switch is on. */
  personal(msg: string, payload: unknown): void;
  child(fields: LogFields): Logger;
}

export interface LoggerOptions {
  service: string;
  level?: Level;
  logPersonalData?: boolean;
  write?: (line: string) => void;
}

/** Error details worth logging: name, code and message along the cause chain, never a stack of data. */
export function describeError(err: unknown): LogFields {
  const parts: string[] = [];
  let e: unknown = err;
  for (let depth = 0; e && depth < 5; depth++) {
    if (e instanceof Error) {
      const code = (e as { code?: unknown }).code;
      parts.push(`${e.name}${code ? `[${String(code)}]` : ''}: ${e.message}`);
      e = (e as { cause?: unknown }).cause;
    } else {
      parts.push(String(e));
      break;
    }
  }
  return { error: parts.join(' <- ') };
}

export function createLogger(opts: LoggerOptions, bound: LogFields = {}): Logger {
  const min = ORDER[opts.level ?? 'info'];
  const write = opts.write ?? ((line: string) => process.stdout.write(line + '\n'));
  const emit = (level: Level, msg: string, fields?: LogFields, extra?: LogFields) => {
    if (ORDER[level] < min) return;
    write(JSON.stringify({ ts: new Date().toISOString(), level, service: opts.service, msg, ...bound, ...fields, ...extra }));
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f, err) => emit('error', m, f, err === undefined ? undefined : describeError(err)),
    personal: (m, payload) => {
      if (!opts.logPersonalData) return;
      write(JSON.stringify({ ts: new Date().toISOString(), level: 'debug', service: opts.service, msg: m, personal: true, ...bound, payload }));
    },
    child: (fields) => createLogger(opts, { ...bound, ...fields }),
  };
}
