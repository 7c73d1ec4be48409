/**
 * POST /v1/batches, one batch from headers to answer:
 *
 *   admission (admission.ts: 503/415/413/429 from the headers) -> read the body (body.ts: 413 if a
 *   chunked body passes the limit) -> the pool (worker.ts, the body moved in, in a group with the batches
 *   read in the same turn: pool.ts) -> Kafka (the sink)
 *   -> 200 / 4xx / 503 (respond.ts)
 *
 * The 200 rule (ARCHITECTURE.md principle 4): the answer is written only after `sink.send` resolved,
 * i.e. after Kafka acknowledged every record of the batch with acks=all. The sink first holds the
 * batch in a mix with concurrent ones (mix.ts) for up to INGEST_MIX_MAX_WAIT_MS; the rule is unchanged.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { admit, release } from './admission.ts';
import { readBody } from './body.ts';
import type { IngestContext } from './context.ts';
import { IngestError } from './errors.ts';
import { runTask } from './pool.ts';
import { unpackRecords } from './records.ts';
import { answerBatch, answerError } from './respond.ts';
import type { WorkerSuccess, WorkerTask } from './task.ts';

export async function handleBatch(ctx: IngestContext, req: IncomingMessage, res: ServerResponse, t0: number, expectsContinue: boolean): Promise<void> {
  const admitted = admit(ctx, req, res, expectsContinue);
  if (!admitted.ok) return answerError(ctx, req, res, t0, admitted, { bodyUnread: true });
  const { format, encoding, declaredLength, reserved } = admitted.value;
  try {
    const endBody = ctx.metrics.bodySeconds.startTimer();
    const body = await readBody(req, ctx.cfg.INGEST_MAX_BODY_BYTES, declaredLength);
    endBody();
    // A body cut off mid-way leaves the connection in an unknown state: close it.
    if (!body.ok) return answerError(ctx, req, res, t0, body, { bodyUnread: body.code === 'INGEST_BODY_TOO_LARGE' });
    const task: WorkerTask = { body: body.value.buffer as ArrayBuffer, length: body.value.length, format, encoding, receivedAt: Date.now() };
    if (req.socket.remoteAddress) task.clientIp = req.socket.remoteAddress;
    const result = await runTask(ctx, task);
    if (!result.ok) return answerError(ctx, req, res, t0, result);
    ctx.metrics.workSeconds.observe(result.workMs / 1000);
    ctx.state.poolBusyMs += result.workMs;
    const suppressed = result.subject && ctx.suppression?.list.kindOf(result.subject.zone, result.subject.hex);
    if (suppressed) {
      // Withdrawn consent (policy 5.3) or restricted processing (5.2): nothing of the batch is written;
      // its events are counted as dropped, and the device is told 200 so it does not retry.
      const dropped = dropAll(result, `dropped_${suppressed}`);
      answerBatch(ctx.metrics, res, t0, dropped);
      countBatch(ctx, dropped);
      return;
    }
    if (!(await produceThenAnswer(ctx, req, res, t0, result))) return;
    countBatch(ctx, result);
  } finally {
    release(ctx, reserved);
  }
}

/** Sends the records to Kafka and answers 200 once acknowledged, or 503. False when Kafka failed. */
async function produceThenAnswer(ctx: IngestContext, req: IncomingMessage, res: ServerResponse, t0: number, result: WorkerSuccess): Promise<boolean> {
  const records = unpackRecords(result);
  if (ctx.cfg.INGEST_UNSAFE_ACK_BEFORE_PRODUCE) {
    // UNSAFE (tests' negative control only): answer first, produce afterwards, ignore failures.
    answerBatch(ctx.metrics, res, t0, result);
    await ctx.sink.send(records).catch(() => {});
    return true;
  }
  const t1 = performance.now();
  try {
    await ctx.sink.send(records);
  } catch (e) {
    answerError(
      ctx,
      req,
      res,
      t0,
      e instanceof IngestError ? e : new IngestError('INGEST_KAFKA_UNAVAILABLE', `Kafka: ${(e as Error).message}`, { cause: e, retriable: true }),
    );
    return false;
  }
  ctx.log.debug('batch acknowledged', {
    events: result.eventCount,
    records: records.events.length + records.personal.length + records.rejected.length,
    produce_ms: Math.round(performance.now() - t1),
  });
  answerBatch(ctx.metrics, res, t0, result);
  return true;
}

/** The result of a suppressed batch: no records, every event it held counted under `reason`. */
function dropAll(result: WorkerSuccess, reason: string): WorkerSuccess {
  return {
    ...result,
    accepted: 0,
    rejects: [],
    droppedConsent: { ...result.droppedConsent, [reason]: result.accepted + result.rejects.length },
    data: new ArrayBuffer(0),
    count: 0,
    headers: null,
    classes: [],
  };
}

/** Event counters of an answered batch (after the answer: they count what the device was told). */
function countBatch({ metrics, log }: IngestContext, result: WorkerSuccess): void {
  metrics.eventsAccepted.inc(result.accepted);
  metrics.batchEvents.observe(result.eventCount);
  for (const r of result.rejects) metrics.eventsRejected.inc({ reason: r.reason });
  for (const [reason, n] of Object.entries(result.droppedConsent)) metrics.eventsDroppedConsent.inc({ reason }, n);
  if (result.rejects.length > 0) log.personal('rejected events', result.rejects);
}
