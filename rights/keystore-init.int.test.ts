/**
 * The key store's tables are created by whichever instance asks first: each pool worker thread of each
 * ingest copy has its own KeyStore, and on a fresh database they all start at once. Against the stack's
 * real PostgreSQL: eight instances initialising one fresh schema together all answer; the negative
 * control (`ddlLock: false`, the bare `CREATE ... IF NOT EXISTS`) loses the race in some round, with
 * PostgreSQL's unique violation on its catalog, which failed the first batches of a fresh ingest.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { keySchemaOf } from '../testing/cleanup.ts';
import { postgresConnection, uniqueName } from '../testing/stack.ts';
import { KeyStore } from './keystore.ts';
import { openZoneKeys } from './zone-keys.ts';

const zone = 'row';
const keys = openZoneKeys(mkdtempSync(join(tmpdir(), 'keystore-init-')), zone, { create: true });
const made: string[] = [];

/** `n` key stores of one fresh schema asking at once; the outcome of each. */
async function together(n: number, ddlLock: boolean): Promise<PromiseSettledResult<number[]>[]> {
  const schema = keySchemaOf(uniqueName('ksinit'));
  made.push(schema);
  const stores = Array.from({ length: n }, () => new KeyStore(keys, postgresConnection(zone), { schema, ddlLock, maxConnections: 1 }));
  try {
    return await Promise.allSettled(stores.map((s) => s.kekVersionsInUse()));
  } finally {
    await Promise.all(stores.map((s) => s.close()));
  }
}

afterAll(async () => {
  const c = new pg.Client(postgresConnection(zone));
  await c.connect();
  try {
    for (const s of made) await c.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
  } finally {
    await c.end();
  }
});

describe('key store tables created by concurrent first users (rights/keystore.ts init)', () => {
  it('eight instances on a fresh schema all answer, in every round', async () => {
    for (let round = 0; round < 5; round++) {
      const outcomes = await together(8, true);
      expect(outcomes.filter((o) => o.status === 'rejected').map((o) => String((o as PromiseRejectedResult).reason))).toEqual([]);
      expect(outcomes.map((o) => (o as PromiseFulfilledResult<number[]>).value)).toEqual(Array.from({ length: 8 }, () => []));
    }
  });

  it('negative control: without the lock, concurrent CREATE ... IF NOT EXISTS fails some instance', async () => {
    const failures: string[] = [];
    for (let round = 0; round < 20 && failures.length === 0; round++) {
      for (const o of await together(8, false)) if (o.status === 'rejected') failures.push(String(o.reason));
    }
    expect(failures.length).toBeGreaterThan(0);
    expect(failures[0]).toMatch(/duplicate key value violates unique constraint|already exists/);
  });
});
