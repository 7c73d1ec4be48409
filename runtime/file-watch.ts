/**
 * Files a service reads again when they change on disk: TLS certificate pairs (tls.ts), the answer
 * service's token list, password files (kafka.ts, the aggregator's ClickHouse store). One notion of
 * "changed" for all of them, and one rule for when a change is acted on.
 */
import { readFileSync, statSync } from 'node:fs';

/**
 * A file's identity on disk, following symlinks (a Kubernetes Secret volume swaps a symlink): device,
 * inode, size and both times to the nanosecond. Any difference is a change; a file that cannot be
 * stat'ed gives `missing:<code>`, so its disappearing and coming back are changes too.
 */
export function fileStamp(file: string): string {
  try {
    const s = statSync(file, { bigint: true });
    return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
  } catch (e) {
    return `missing:${(e as NodeJS.ErrnoException).code ?? 'error'}`;
  }
}

/** How often a StableChangeWatch looks at its files' metadata. */
export const RELOAD_CHECK_MS = 1000;

/**
 * Calls `onChange` once a change of `stamp()` has held for one more look, so a file being written is not
 * read half way. `seen` is the stamp of what is in use (taken when it was read, not when the watch
 * starts, so a change in between is not missed).
 */
export class StableChangeWatch {
  private candidate: string | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly stamp: () => string,
    private readonly onChange: () => void,
    private seen: string = stamp(),
  ) {}

  start(checkMs = RELOAD_CHECK_MS): this {
    this.timer ??= setInterval(() => this.check(), checkMs).unref();
    return this;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One look; calls `onChange` when a change has held since the previous look. */
  check(): void {
    const now = this.stamp();
    if (now === this.seen) {
      this.candidate = undefined;
      return;
    }
    if (now !== this.candidate) {
      this.candidate = now;
      return;
    }
    this.seen = now;
    this.candidate = undefined;
    this.onChange();
  }
}

/**
 * A password file read at the moment it is needed (a connection authenticating, a request): its content
 * again when the file's stamp changed since the last good read (an atomic replace by rename is a new
 * inode), else the cached value; `force` reads it again regardless (after the server refused the
 * password). A file that cannot be read or is empty at that moment (in the middle of a non-atomic
 * rewrite) leaves the last good password in place: the caller then fails authentication and retries,
 * rather than the process dying on a read.
 */
export function passwordFileReader(file: string, initial: string): (force?: boolean) => string {
  let password = initial;
  let seen = fileStamp(file);
  return (force = false) => {
    const now = fileStamp(file);
    if (force || now !== seen) {
      try {
        const content = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
        if (content) {
          password = content;
          seen = now;
        }
      } catch {
        // keep the last good password (see above)
      }
    }
    return password;
  };
}
