// Error catalogue of the local stack (stack/). Every failure the stack reports to a user is one of
// these codes with a one-line message that says what is wrong and what to do; the CLI prints exactly that
// line and exits non-zero (see cli.ts).

import { CodedError } from '../runtime/errors.ts';

export const STACK_ERROR_CODES = [
  'STACK_CONFIG_INVALID',
  'STACK_CONFIG_UNKNOWN_KEY',
  'STACK_PORT_IN_USE',
  'STACK_JAVA_MISSING',
  'STACK_JAVA_TOO_OLD',
  'STACK_MAVEN_MISSING',
  'STACK_KAFKA_FETCH_FAILED',
  'STACK_CLICKHOUSE_MISSING',
  'STACK_PROMETHEUS_MISSING',
  'STACK_POSTGRES_MISSING',
  'STACK_ZOOKEEPER_FETCH_FAILED',
  'STACK_START_FAILED',
  'STACK_START_TIMEOUT',
  'STACK_STOP_TIMEOUT',
  'STACK_NOT_RUNNING',
  'STACK_EXTERNAL',
  'STACK_LOCK_TIMEOUT',
] as const;

export type StackErrorCode = (typeof STACK_ERROR_CODES)[number];

export class StackError extends CodedError<StackErrorCode> {
  override readonly name: string = 'StackError';
}

export function isStackError(e: unknown): e is StackError {
  return e instanceof StackError;
}
