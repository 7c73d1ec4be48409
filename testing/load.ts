/**
 * HTTP load against an ingest worker: N concurrent keep-alive clients posting batches until a deadline
 * or a batch budget. Used by the fault tests (to see every answer) and by the bench's load process.
 */
import http from 'node:http';
import type { BatchAnswer, ErrorAnswer } from '../ingest/respond.ts';

/**
 * An ingest answer's JSON as a client reads it (ingest/respond.ts writes it): the fields of a 200
 * (BatchAnswer) and of an error answer (ErrorAnswer), each there or not: the status says which.
 * Not validated.
 */
export type IngestAnswer = Partial<BatchAnswer & ErrorAnswer>;

export interface Posted<M> {
  status: number;
  /** Parsed JSON answer, the text of an answer that is not JSON, or undefined for a connection error. */
  body: IngestAnswer | string | undefined;
  retryAfter: string | undefined;
  ms: number;
  meta: M;
  /** Connection-level error (refused, reset), when no HTTP answer arrived. */
  error?: string;
}

export interface LoadOptions<M> {
  url: string;
  concurrency: number;
  /** Stop starting new requests after this long. */
  durationMs: number;
  /** Stop after this many requests in total (a bound on every loop). */
  maxRequests: number;
  next: (i: number) => { body: Buffer; meta: M; contentType?: string };
  onResult?: (r: Posted<M>) => void;
  /** Pause between a client's requests (ms); 0 = back to back. */
  pauseMs?: number;
  /**
   * Independent clients (devices): each waits a random part of the pause before its first request, and
   * each pause is drawn uniformly from [0, 2 x pauseMs], so arrivals do not come in waves.
   */
  jitter?: boolean;
  /** Keep the answers (fault tests); off for the bench, which only counts. */
  keep?: boolean;
  /** Checked before each request: true ends the load early (e.g. the server under test has exited). */
  stop?: () => boolean;
}

export interface LoadSummary<M> {
  requests: number;
  byStatus: Record<string, number>;
  results: Posted<M>[];
  latenciesMs: number[];
  elapsedMs: number;
}

export function postOnce(
  agent: http.Agent,
  url: URL,
  body: Buffer,
  contentType: string,
): Promise<{ status: number; text: string; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        method: 'POST',
        path: '/v1/batches',
        headers: { 'content-type': contentType, 'content-length': body.length },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString(), retryAfter: res.headers['retry-after'] as string | undefined }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

export async function runLoad<M>(o: LoadOptions<M>): Promise<LoadSummary<M>> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency });
  const url = new URL(o.url);
  const byStatus: Record<string, number> = {};
  const results: Posted<M>[] = [];
  const latenciesMs: number[] = [];
  let i = 0;
  const t0 = performance.now();
  const deadline = t0 + o.durationMs;
  await Promise.all(
    Array.from({ length: o.concurrency }, async () => {
      if (o.jitter && o.pauseMs) await new Promise((res) => setTimeout(res, Math.random() * o.pauseMs!));
      while (performance.now() < deadline && i < o.maxRequests && !o.stop?.()) {
        const n = i++;
        const { body, meta, contentType } = o.next(n);
        const s = performance.now();
        let r: Posted<M>;
        try {
          const a = await postOnce(agent, url, body, contentType ?? 'avro/binary');
          let parsed: IngestAnswer | string;
          try {
            parsed = JSON.parse(a.text) as IngestAnswer;
          } catch {
            parsed = a.text;
          }
          r = { status: a.status, body: parsed, retryAfter: a.retryAfter, ms: performance.now() - s, meta };
        } catch (e) {
          r = { status: 0, body: undefined, retryAfter: undefined, ms: performance.now() - s, meta, error: (e as Error).message };
          await new Promise((res) => setTimeout(res, 50));
        }
        byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
        if (r.status === 200) latenciesMs.push(r.ms);
        if (o.keep) results.push(r);
        o.onResult?.(r);
        if (o.pauseMs) await new Promise((res) => setTimeout(res, o.jitter ? Math.random() * 2 * o.pauseMs! : o.pauseMs));
      }
    }),
  );
  agent.destroy();
  return { requests: i, byStatus, results, latenciesMs, elapsedMs: performance.now() - t0 };
}

/** The answer's JSON fields; undefined for a connection error or an answer that is not JSON. */
export function answerOf(r: Posted<unknown>): IngestAnswer | undefined {
  return typeof r.body === 'object' ? r.body : undefined;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
