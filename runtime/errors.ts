/**
 * The one error base of the project. Every error a caller may branch on carries a stable `code` from its
 * module's catalogue (ingest/errors.ts, aggregator/errors.ts, schemas/errors.ts, stack/errors.ts, ...)
 * and says whether trying the same thing again can succeed (`retriable`): callers decide on these two
 * fields, never on the wording of a message (ARCHITECTURE.md, "Errors").
 */
export interface CodedErrorOptions {
  cause?: unknown;
  /** Trying the same operation again may succeed (a broker briefly away, a timeout). @default false */
  retriable?: boolean;
}

export class CodedError<Code extends string = string> extends Error {
  override readonly name: string = 'CodedError';
  readonly retriable: boolean;

  constructor(
    readonly code: Code,
    message: string,
    options: CodedErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.retriable = options.retriable ?? false;
  }
}

/** The `retriable` flag of any error: a CodedError's own, or an error of a client library that says so. */
export function isRetriable(e: unknown): boolean {
  if (e instanceof CodedError) return e.retriable;
  // kafkajs marks its errors with `retriable` (KafkaJSError); other libraries do not say.
  return typeof e === 'object' && e !== null && (e as { retriable?: unknown }).retriable === true;
}
