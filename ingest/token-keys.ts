/**
 * The day secrets of the daily token as the ingest process sees them (schemas/tokenizer.ts,
 * ARCHITECTURE.md principle 3): which source the workers read, the hourly sweep, and what /readyz and the key
 * gauges report.
 *
 * Two modes (`INGEST_TOKEN_KEYS_MODE`, see KEY_DIR_MODES in schemas/tokenizer.ts):
 * - manage: ingest is the rotation (local stack, compose on one shared volume).
 * - read-only: an outside rotation owns the directory (Kubernetes: a CronJob patches a Secret mounted
 *   read-only into every pod, deploy/k8s). Ingest never writes there; a pod without today's secret
 *   reports not ready so the Service sends it no traffic, and the gauges let an alert say the rotation
 *   is overdue before a day goes without a secret.
 */
import type { Logger } from '../runtime/index.ts';
import { DailyTokenizer, EnvKeySource, FileKeySource, isoOfDay, DAY_MS, type KeyDirMode, type KeySource, type TokenKeyStatus } from '../schemas/index.ts';

/** Where the day secrets come from; passed to every worker thread (structured clone: plain data). */
export type TokenKeysSpec = { kind: 'file'; dir: string; mode?: KeyDirMode } | { kind: 'env'; spec: string };

/** The source a worker (or the main thread) reads. An environment source is read-only by nature. */
export function keySourceOf(spec: TokenKeysSpec): KeySource {
  return spec.kind === 'file' ? new FileKeySource(spec.dir, { mode: spec.mode ?? 'manage' }) : new EnvKeySource(spec.spec);
}

export function modeOf(spec: TokenKeysSpec): KeyDirMode {
  return spec.kind === 'file' ? (spec.mode ?? 'manage') : 'read-only';
}

/** `/readyz` entry: `ok`, or why this process cannot tokenise today's events. */
export interface KeyReadiness {
  ok: boolean;
  detail: 'ok' | `missing today${string}`;
}

/** What the sweep did (`TokenKeyWatch.sweep`). */
export interface SweepResult {
  destroyed: number[];
  /** Past the grace but still in a read-only directory: ignored by the tokenizer, the rotation is late. */
  expiredKept: number[];
  error?: string;
}

/** The main thread's view of the day secrets: sweep, readiness, gauges. Workers read their own source. */
export class TokenKeyWatch {
  readonly mode: KeyDirMode;
  readonly tokenizer: DailyTokenizer;

  constructor(readonly spec: TokenKeysSpec) {
    this.mode = modeOf(spec);
    this.tokenizer = new DailyTokenizer(keySourceOf(spec));
  }

  status(nowMs: number = Date.now()): TokenKeyStatus {
    return this.tokenizer.status(nowMs);
  }

  /**
   * Whether this process can tokenise events of today. In manage mode today's secret is created when
   * missing (what the first batch of the day would do anyway), so only a directory that refuses the
   * write makes it not ready. In read-only mode it is only read: without it every event of today would
   * be refused, so the pod is taken out of the Service until the rotation provides it.
   */
  readiness(nowMs: number = Date.now()): KeyReadiness {
    const today = Math.floor(nowMs / DAY_MS);
    try {
      // read-only sources ignore `create`.
      if (this.tokenizer.source.secretFor(today, true)) return { ok: true, detail: 'ok' };
      return { ok: false, detail: `missing today (${isoOfDay(today)}.key)` };
    } catch (e) {
      return { ok: false, detail: `missing today (${isoOfDay(today)}.key: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` };
    }
  }

  /**
   * Destroys the secrets past their grace (manage mode); in read-only mode only forgets them and says
   * which are still there. Never throws: a failed unlink is logged and reported (the expired-keys gauge
   * shows it too) instead of ending the process, since the tokenizer refuses an expired secret anyway.
   */
  sweep(nowMs: number, log?: Logger): SweepResult {
    const out: SweepResult = { destroyed: [], expiredKept: [] };
    try {
      out.destroyed = this.tokenizer.rotate(nowMs);
    } catch (e) {
      out.error = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    }
    out.expiredKept = this.status(nowMs).expiredDays;
    if (out.destroyed.length) log?.info('destroyed day secrets', { days: out.destroyed.length });
    if (out.error) log?.error('could not destroy an expired day secret; it is not used, but it still exists', { error: out.error, mode: this.mode });
    else if (out.expiredKept.length) {
      log?.warn('expired day secrets are still in the key directory (ignored; the rotation is late to remove them)', {
        days: out.expiredKept.map(isoOfDay).join(','),
        mode: this.mode,
      });
    }
    return out;
  }

  /** Values of the key gauges (ingest/metrics.ts), in seconds since epoch; 0 when there is no key. */
  gauges(nowMs: number = Date.now()): { mode: KeyDirMode; newestDaySeconds: number; oldestDaySeconds: number; expired: number } {
    const s = this.status(nowMs);
    return {
      mode: this.mode,
      newestDaySeconds: s.newestDay === undefined ? 0 : (s.newestDay * DAY_MS) / 1000,
      oldestDaySeconds: s.oldestDay === undefined ? 0 : (s.oldestDay * DAY_MS) / 1000,
      expired: s.expiredDays.length,
    };
  }
}
