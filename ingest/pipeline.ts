/**
 * The part of `schemas/` the ingest worker calls, behind one narrow interface.
 *
 * `schemas/index.ts` exports the compiled pipeline (issue 3). It was being written at the same time
 * as ingest, so this file is the single place that binds to its names; everything else in ingest/
 * depends on `SchemasApi` only.
 */
import type avro from 'avsc';
import type { SplitResult } from '../schemas/contract.ts';
import type { DailyTokenizer } from '../schemas/tokenizer.ts';

/** schemas/guard.ts `DecodeLimits`. */
export interface GuardLimits {
  maxStringLength: number;
  maxCollectionLength: number;
  maxTotalItems: number;
  maxItems?: Record<string, number>;
}

export interface ProcessContext {
  receivedAt: number;
  clientIp?: string;
  tokenizer: DailyTokenizer;
}

export interface SchemasApi {
  compilePipeline(opts?: unknown): { processBatch(batch: unknown, ctx: ProcessContext): SplitResult };
  batchType: avro.Type;
  resolveWriter(writerSchemaJson: string): unknown;
  guardedDecode(type: avro.Type, buf: Buffer, limits: GuardLimits, reader?: avro.Type): unknown;
}

export async function loadSchemas(): Promise<SchemasApi> {
  const mod = (await import('../schemas/index.ts')) as unknown as Partial<SchemasApi>;
  for (const name of ['compilePipeline', 'batchType', 'resolveWriter', 'guardedDecode'] as const) {
    if (mod[name] === undefined) throw new Error(`schemas/index.ts does not export ${name} yet (issue 3)`);
  }
  return mod as SchemasApi;
}
