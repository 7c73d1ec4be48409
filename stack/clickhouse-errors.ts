// A typed error for ClickHouse server errors that works on 18.16 as well as on modern releases and chdb.
// @clickhouse/client turns a server error into its ClickHouseError only when the text matches the modern
// format "Code: 62. DB::Exception: <msg>. (SYNTAX_ERROR)"; ClickHouse 18.16 answers
// "Code: 62, e.displayText() = DB::Exception: <msg>, e.what() = DB::Exception" with no type name, so the
// client hands back a plain Error and callers could only string-match. This parses both, and fills the
// type name from ClickHouse's stable numeric code where the server did not send one.

/** Names of the codes a pipeline meets; numbers are ClickHouse's ErrorCodes, identical from 18.x to 26.x. */
export const CLICKHOUSE_ERROR_NAMES: Readonly<Record<number, string>> = {
  6: 'CANNOT_PARSE_TEXT',
  16: 'NO_SUCH_COLUMN_IN_TABLE',
  26: 'CANNOT_PARSE_QUOTED_STRING',
  27: 'CANNOT_PARSE_INPUT_ASSERTION_FAILED',
  36: 'BAD_ARGUMENTS',
  38: 'CANNOT_PARSE_DATE',
  41: 'CANNOT_PARSE_DATETIME',
  42: 'NUMBER_OF_ARGUMENTS_DOESNT_MATCH',
  43: 'ILLEGAL_TYPE_OF_ARGUMENT',
  44: 'ILLEGAL_COLUMN',
  46: 'UNKNOWN_FUNCTION',
  47: 'UNKNOWN_IDENTIFIER',
  48: 'NOT_IMPLEMENTED',
  53: 'TYPE_MISMATCH',
  57: 'TABLE_ALREADY_EXISTS',
  60: 'UNKNOWN_TABLE',
  62: 'SYNTAX_ERROR',
  72: 'CANNOT_PARSE_NUMBER',
  73: 'UNKNOWN_FORMAT',
  81: 'UNKNOWN_DATABASE',
  82: 'DATABASE_ALREADY_EXISTS',
  115: 'UNKNOWN_SETTING',
  117: 'INCORRECT_DATA',
  158: 'TOO_MANY_ROWS',
  159: 'TIMEOUT_EXCEEDED',
  164: 'READONLY',
  192: 'UNKNOWN_USER',
  193: 'WRONG_PASSWORD',
  194: 'REQUIRED_PASSWORD',
  195: 'IP_ADDRESS_NOT_ALLOWED',
  241: 'MEMORY_LIMIT_EXCEEDED',
  252: 'TOO_MANY_PARTS',
  291: 'DATABASE_ACCESS_DENIED',
  396: 'TOO_MANY_ROWS_OR_BYTES',
  497: 'ACCESS_DENIED',
  516: 'AUTHENTICATION_FAILED',
};

export class ClickHouseServerError extends Error {
  override readonly name = 'ClickHouseServerError';
  /** ClickHouse's numeric error code (62 = SYNTAX_ERROR, 60 = UNKNOWN_TABLE, ...). */
  readonly code: number;
  /** The code's name: sent by modern servers, looked up for 18.16; `UNKNOWN_CODE_<n>` if neither. */
  readonly type: string;

  constructor(code: number, type: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.type = type;
  }
}

/**
 * The server error inside `e`, typed; undefined when `e` is not a ClickHouse server error (a network
 * failure, a timeout, a bug), so callers can tell "the SQL was refused" from "the server is unreachable".
 * Accepts @clickhouse/client errors (modern servers: ClickHouseError; 18.16: plain Error with the
 * server's text) and chdb's ChdbQueryError (which carries `clickhouseCode`).
 */
export function toClickHouseError(e: unknown): ClickHouseServerError | undefined {
  if (e instanceof ClickHouseServerError) return e;
  if (!(e instanceof Error)) return undefined;
  const err = e as Error & { code?: unknown; type?: unknown; clickhouseCode?: unknown };
  const text = err.message;
  let code: number | undefined;
  if (typeof err.clickhouseCode === 'number') code = err.clickhouseCode;
  else if (typeof err.code === 'string' && /^\d+$/.test(err.code) && typeof err.type === 'string') code = Number(err.code);
  else {
    const m = /Code: (\d+)[.,] (?:e\.displayText\(\) = )?DB::Exception/.exec(text);
    if (m) code = Number(m[1]);
  }
  if (code === undefined) return undefined;

  // Modern servers end the text with "(TYPE_NAME)" (then maybe "(version ...)"); the last such marker
  // is the type, since the message itself can quote SQL with parentheses.
  const markers = [...text.matchAll(/\(([A-Z][A-Z0-9_]{2,})\)/g)];
  const sentType = typeof err.type === 'string' ? err.type : markers.at(-1)?.[1];
  const type = sentType ?? CLICKHOUSE_ERROR_NAMES[code] ?? `UNKNOWN_CODE_${code}`;

  let message = text;
  const body = /DB::Exception: ([\s\S]*)$/.exec(text)?.[1];
  if (body !== undefined) message = body;
  message = message
    .replace(/, e\.what\(\) = [\w:]+\s*$/, '') // 18.x suffix
    .replace(/\s*\(version [^)]*\)\s*$/, '')
    .replace(new RegExp(`\\.?\\s*\\(${type}\\)\\s*$`), '')
    .trim();
  return new ClickHouseServerError(code, type, message, { cause: e });
}
