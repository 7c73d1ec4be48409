/**
 * Error catalogue of `npm run demo`. Each is a problem a new user can act on; the CLI prints the one
 * line and exits 1. Anything else is a bug and prints its stack (exit 2).
 */
import { CodedError } from '../runtime/errors.ts';

export const DEMO_ERROR_CODES = ['DEMO_BAD_ARGUMENT', 'DEMO_PORT_IN_USE', 'DEMO_STACK_FAILED', 'DEMO_CHILD_FAILED', 'DEMO_INTERRUPTED'] as const;

export type DemoErrorCode = (typeof DEMO_ERROR_CODES)[number];

export class DemoError extends CodedError<DemoErrorCode> {
  override readonly name: string = 'DemoError';
}
