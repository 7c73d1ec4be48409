/**
 * The sealing settings of an ingest under test (rights/README.md): the stack's PostgreSQL key stores,
 * one database per zone, and a fresh directory of zone keys, so a test's subjects and data keys are its
 * own (another test's records never open with them).
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SealingSpec } from '../rights/sealer.ts';
import { ZONES, type Zone } from '../schemas/index.ts';
import { StackError } from '../stack/errors.ts';
import pg_ from 'pg';
import { keySchemaOf } from './cleanup.ts';
import { postgresConnection, stackInfo, uniqueName } from './stack.ts';

/** The key stores of a sealing env, as rights/sealer.ts ZoneStores takes them (tests open what ingest sealed). */
export function sealingSpecOf(s: SealingEnv): Omit<SealingSpec, 'cacheTtlMs'> {
  const pg = stackInfo().postgres!;
  return {
    keyDir: s.keyDir,
    createKeys: true,
    stores: Object.fromEntries(ZONES.map((z) => [z, s.env[`INGEST_KEYSTORE_${z.toUpperCase()}`]!])) as Record<Zone, string>,
    user: pg.user,
    schema: s.schema,
    password: readFileSync(pg.passwordFile, 'utf8').replace(/\r?\n$/, ''),
  };
}

export interface SealingEnv {
  env: Record<string, string>;
  keyDir: string;
  /** This env's own PostgreSQL schema in every zone database. */
  schema: string;
  /** Drops the schema in every zone database (the test file's cleanup). */
  drop(): Promise<void>;
}

/** INGEST_KEYSTORE_* / INGEST_RIGHTS_KEY_DIR for the local stack; `keyDir` defaults to a fresh temporary directory. */
export function sealingEnv(keyDir = mkdtempSync(join(tmpdir(), 'rights-keys-'))): SealingEnv {
  const pg = stackInfo().postgres;
  if (!pg?.running) throw new StackError('STACK_NOT_RUNNING', 'the key store (PostgreSQL of the stack) is not running: run npm run stack:up');
  // Dropped with the file's topics and databases (testing/cleanup.ts), or by `drop`.
  const schema = keySchemaOf(uniqueName('ks'));
  const env: Record<string, string> = {
    INGEST_KEYSTORE_SCHEMA: schema,
    INGEST_KEYSTORE_USER: pg.user,
    INGEST_KEYSTORE_PASSWORD_FILE: pg.passwordFile,
    INGEST_RIGHTS_KEY_DIR: keyDir,
  };
  for (const z of ZONES) env[`INGEST_KEYSTORE_${z.toUpperCase()}`] = `${pg.host}:${pg.port}/${pg.databases[z]}`;
  const drop = async () => {
    for (const z of ZONES) {
      const c = new pg_.Client(postgresConnection(z));
      await c.connect();
      try {
        await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      } finally {
        await c.end();
      }
    }
  };
  return { env, keyDir, schema, drop };
}
