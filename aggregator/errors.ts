/**
 * Error catalogue of `aggregator/` (ARCHITECTURE.md, "Errors": one `as const` code list, so a code is a union type).
 * Data problems in a record (undecodable bytes, an event outside the lateness window) are values
 * (`FactVerdict`), counted in metrics; the classes below are for broken infrastructure and bad input
 * from an operator or analyst (migrations, store failures, query arguments).
 */
import { CodedError } from '../runtime/errors.ts';

export const AGGREGATOR_ERROR_CODES = [
  // Operator / analyst input.
  'AGG_BAD_ARGUMENT',
  'AGG_BAD_DAY',
  'AGG_BAD_DIMENSION',
  'AGG_BAD_EPSILON',
  // Differential privacy: the analyst's budget for the UTC day is spent (private-query.ts).
  'AGG_PRIVACY_BUDGET_SPENT',
  // No ledger to keep the budget in; an exact answer with nowhere to log it (no ledger, query log off).
  'AGG_NO_LEDGER',
  'AGG_EXACT_UNLOGGED',
  // The answer service (answer-service.ts): an unknown bearer token; --exact asked of it.
  'AGG_UNAUTHORIZED',
  'AGG_EXACT_REFUSED',
  // Store: ClickHouse server or chdb (store.ts). The codes keep their published AGG_SINK_ names.
  'AGG_SINK_UNAVAILABLE',
  'AGG_SINK_QUERY_FAILED',
  'AGG_SINK_INSERT_FAILED',
  'AGG_MIGRATION_FAILED',
  'AGG_MIGRATION_CHANGED',
  // Kafka.
  'AGG_COMMIT_FAILED',
] as const;

export type AggregatorErrorCode = (typeof AGGREGATOR_ERROR_CODES)[number];

export class AggregatorError extends CodedError<AggregatorErrorCode> {
  override readonly name: string = 'AggregatorError';
}

/** An analyst's command line or a query request is wrong; the message says what to type instead. */
export class QueryArgumentError extends AggregatorError {
  override readonly name: string = 'QueryArgumentError';
}
