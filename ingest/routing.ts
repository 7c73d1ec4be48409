/**
 * Which request goes where: the ops endpoints (`/metrics`, `/healthz`, `/readyz`: runtime/ops.ts),
 * POST /v1/batches (batches.ts), 404/405 for anything else, and `Expect: 100-continue`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { handleOps } from '../runtime/index.ts';
import { handleBatch } from './batches.ts';
import type { IngestContext } from './context.ts';
import { samplePool } from './pool.ts';
import { answerError } from './respond.ts';

const BATCHES_PATH = '/v1/batches';

function pathOf(req: IncomingMessage): string {
  return (req.url ?? '/').split('?', 1)[0]!;
}

/** Every request. `expectsContinue`: the client waits for `100 Continue` before it sends the body. */
export function route(ctx: IngestContext, req: IncomingMessage, res: ServerResponse, expectsContinue: boolean): void {
  const t0 = performance.now();
  if (req.url === '/metrics') samplePool(ctx);
  if (handleOps({ registry: ctx.metrics.registry, ready: () => readiness(ctx) }, req, res)) return;
  const path = pathOf(req);
  if (path === BATCHES_PATH) {
    if (req.method !== 'POST')
      return answerError(ctx, req, res, t0, { ok: false, code: 'INGEST_METHOD_NOT_ALLOWED', message: 'use POST' }, { bodyUnread: true });
    handleBatch(ctx, req, res, t0, expectsContinue).catch((e: unknown) => {
      ctx.log.error('batch failed', {}, e);
      answerError(ctx, req, res, t0, { ok: false, code: 'INGEST_INTERNAL', message: 'internal error' });
    });
    return;
  }
  answerError(ctx, req, res, t0, { ok: false, code: 'INGEST_NOT_FOUND', message: `no route ${req.method} ${path.slice(0, 80)}` }, { bodyUnread: true });
}

/**
 * `Expect: 100-continue` (curl and many SDKs for bodies over 1 kB): Node would answer 100 at once and
 * the client would start uploading. Batches decide first (415/413/429 from the headers, admission.ts),
 * and only an admitted one gets 100 Continue; other routes get it at once.
 */
export function routeExpectingContinue(ctx: IngestContext, req: IncomingMessage, res: ServerResponse): void {
  if (pathOf(req) === BATCHES_PATH && req.method === 'POST') return route(ctx, req, res, true);
  res.writeContinue();
  route(ctx, req, res, false);
}

/** `/readyz`: Kafka answers, the pool has threads, today's day secret is readable, not shutting down. */
export async function readiness({ sink, pool, keys, state }: IngestContext): Promise<{ ok: boolean; checks: Record<string, string> }> {
  const k = await sink.ready();
  const poolOk = pool.threads.length > 0;
  // Without today's day secret (read-only mode: the rotation has not provided it) every event of today
  // would be refused: take this copy out of the Service instead (the device retries on another).
  const tk = keys.readiness();
  const checks: Record<string, string> = {
    ...k.checks,
    pool: poolOk ? 'ok' : 'no worker threads',
    token_keys: tk.detail,
    accepting: state.shuttingDown ? 'shutting down' : 'ok',
  };
  return { ok: k.ok && poolOk && tk.ok && !state.shuttingDown, checks };
}
