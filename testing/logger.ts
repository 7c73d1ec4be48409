/** A logger that writes nothing, for tests that start a service but do not read its logs. */
import type { Logger } from '../runtime/log.ts';

export const quietLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  personal() {},
  child() {
    return quietLogger;
  },
};
