/**
 * The operator endpoints every service exposes: `/metrics` (Prometheus text via prom-client),
 * `/healthz` (the process is alive and its event loop turns) and `/readyz` (its dependencies answer;
 * a load balancer stops sending traffic while it is false). Kept separate from business routes so the
 * ingest HTTP server and the aggregator's small status server share one implementation.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';

export interface ReadinessCheck {
  ok: boolean;
  /** Per-dependency detail, e.g. { kafka: 'ok', pool: 'ok' } or { clickhouse: 'ECONNREFUSED' }. */
  checks: Record<string, string>;
}

export interface OpsRoutes {
  registry: Registry;
  ready: () => Promise<ReadinessCheck> | ReadinessCheck;
}

/** Answers an ops route and returns true, or returns false for any other path. */
export function handleOps(routes: OpsRoutes, req: IncomingMessage, res: ServerResponse): boolean {
  const path = (req.url ?? '/').split('?', 1)[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  if (path === '/healthz') {
    send(res, 200, 'application/json', JSON.stringify({ ok: true }));
    return true;
  }
  if (path === '/readyz') {
    Promise.resolve()
      .then(() => routes.ready())
      .then(
        (r) => send(res, r.ok ? 200 : 503, 'application/json', JSON.stringify(r)),
        (err: unknown) => send(res, 503, 'application/json', JSON.stringify({ ok: false, checks: { error: String(err) } })),
      );
    return true;
  }
  if (path === '/metrics') {
    routes.registry.metrics().then(
      (text) => send(res, 200, routes.registry.contentType, text),
      (err: unknown) => send(res, 500, 'text/plain', `metrics failed: ${String(err)}\n`),
    );
    return true;
  }
  return false;
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}
