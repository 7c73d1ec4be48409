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
  159: 'TIMEOUT_EXCEEDED',
  241: 'MEMORY_LIMIT_EXCEEDED',
  252: 'TOO_MANY_PARTS',
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

// Modern: "Code: 62. DB::Exception: Syntax error: ... (SYNTAX_ERROR) (version 24.3.1)"
const MODERN = /Code: (\d+)\. DB::Exception: (.+?)(?:\. )?\(([A-Z][A-Z0-9_]{2,})\)/s;
// 18.x: "Code: 62, e.displayText() = DB::Exception: Syntax error: ..., e.what() = DB::Exception"
const LEGACY = /Code: (\d+), e\.displayText\(\) = DB::Exception: (.+?)(?:, e\.what\(\) = [\w:]+)?\s*$/s;

/**
 * The server error inside `e`, typed; undefined when `e` is not a ClickHouse server error (a network
 * failure, a timeout, a bug), so callers can tell "the SQL was refused" from "the server is unreachable".
 */
export function toClickHouseError(e: unknown): ClickHouseServerError | undefined {
  if (e instanceof ClickHouseServerError) return e;
  if (!(e instanceof Error)) return undefined;
  const anyErr = e as Error & { code?: unknown; type?: unknown };
  // @clickhouse/client's own ClickHouseError (modern servers): code is a numeric string.
  if (typeof anyErr.code === 'string' && /^\d+$/.test(anyErr.code) && typeof anyErr.type === 'string') {
    return new ClickHouseServerError(Number(anyErr.code), anyErr.type, e.message.trim(), { cause: e });
  }
  const text = e.message;
  const modern = MODERN.exec(text);
  if (modern) {
    return new ClickHouseServerError(Number(modern[1]), modern[3] as string, (modern[2] as string).trim(), { cause: e });
  }
  const legacy = LEGACY.exec(text);
  if (legacy) {
    const code = Number(legacy[1]);
    return new ClickHouseServerError(code, CLICKHOUSE_ERROR_NAMES[code] ?? `UNKNOWN_CODE_${code}`, (legacy[2] as string).trim(), { cause: e });
  }
  return undefined;
}
