// The key store's PostgreSQL 15 (stack/postgres.ts) as the stack runs it: every zone database answers
// the `keystore` role with the password from its file, over TCP with scram-sha-256 only; a wrong password
// and the superuser over TCP are refused; data survives a stop and start (on a PostgreSQL of this file's
// own, so the shared one never stops under another suite).
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { ZONES } from '../schemas/contract.ts';
import { loadStackConfig } from './config.ts';
import { postgresInstance } from './postgres.ts';
import { postgresConnection, stackInfo, startOwnPostgres, uniqueName, type OwnPostgres, type PostgresConnection } from '../testing/stack.ts';

/** A connected client; the caller ends it. */
async function connect(settings: PostgresConnection): Promise<pg.Client> {
  const c = new pg.Client({ ...settings, connectionTimeoutMillis: 5000 });
  c.on('error', () => {});
  await c.connect();
  return c;
}

/** The error a connection attempt fails with (undefined when it succeeds). */
async function connectError(settings: PostgresConnection): Promise<(Error & { code?: string }) | undefined> {
  const c = new pg.Client({ ...settings, connectionTimeoutMillis: 5000 });
  c.on('error', () => {});
  try {
    await c.connect();
    return undefined;
  } catch (e) {
    return e as Error & { code?: string };
  } finally {
    await c.end().catch(() => {});
  }
}

/** A table name of this file: uniqueName() within PostgreSQL's 63-byte identifiers. */
function tableName(): string {
  const name = uniqueName('pg_int');
  expect(name.length).toBeLessThanOrEqual(63);
  return name;
}

describe('the stack PostgreSQL', () => {
  it('is in stack.json: running, loopback, the keystore role, one database per zone, version 15', () => {
    const info = stackInfo().postgres;
    expect(info).toMatchObject({ running: true, host: '127.0.0.1', user: 'keystore' });
    expect(info!.version).toMatch(/^15\.\d+/);
    expect(info!.pids).toHaveLength(1);
    expect(info!.databases).toEqual(Object.fromEntries(ZONES.map((z) => [z, `keys_${z}`])));
    // The password is only in its file, readable by its owner alone.
    expect(statSync(info!.passwordFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(info!.passwordFile, 'utf8').trim().length).toBeGreaterThanOrEqual(16);
  });

  it.each(ZONES)('zone %s: keystore creates, writes, reads and drops a table in keys_%s', async (zone) => {
    const c = await connect(postgresConnection(zone));
    const table = tableName();
    try {
      const who = await c.query<{ db: string; usr: string }>('SELECT current_database() AS db, current_user AS usr');
      expect(who.rows[0]).toEqual({ db: `keys_${zone}`, usr: 'keystore' });
      await c.query(`CREATE TABLE ${table} (id text PRIMARY KEY, wrapped bytea NOT NULL, made timestamptz NOT NULL DEFAULT now())`);
      const bytes = Buffer.from([0, 1, 2, 254, 255, 0x27, 0x5c]);
      await c.query(`INSERT INTO ${table} (id, wrapped) VALUES ($1, $2)`, [`device-${zone}`, bytes]);
      const back = await c.query<{ id: string; wrapped: Buffer }>(`SELECT id, wrapped FROM ${table}`);
      expect(back.rows).toEqual([{ id: `device-${zone}`, wrapped: bytes }]);
    } finally {
      await c.query(`DROP TABLE IF EXISTS ${table}`);
      const gone = await c.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [table]);
      expect(gone.rows[0]!.t).toBeNull();
      await c.end();
    }
  });

  it('refuses a wrong password (28P01); the right one, same settings otherwise, is accepted', async () => {
    const good = postgresConnection('row');
    const refused = await connectError({ ...good, password: `${good.password}x` });
    expect(refused?.code).toBe('28P01');
    expect(refused?.message).toMatch(/password authentication failed for user "keystore"/);
    expect(await connectError(good)).toBeUndefined();
  });

  it('refuses the superuser over TCP whatever the password; the keystore role is no superuser', async () => {
    const good = postgresConnection('row');
    const asAdmin = await connectError({ ...good, user: 'postgres', database: 'postgres' });
    expect(asAdmin?.code).toBe('28000');
    expect(asAdmin?.message).toMatch(/pg_hba\.conf rejects connection/);
    const c = await connect(good);
    try {
      const r = await c.query<{ rolsuper: boolean; rolcreaterole: boolean; rolcreatedb: boolean }>(
        'SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user',
      );
      expect(r.rows[0]).toEqual({ rolsuper: false, rolcreaterole: false, rolcreatedb: false });
      // Loopback only, and the role's password stored as a SCRAM verifier.
      expect((await c.query<{ listen_addresses: string }>('SHOW listen_addresses')).rows[0]!.listen_addresses).toBe('127.0.0.1');
      expect((await c.query<{ password_encryption: string }>('SHOW password_encryption')).rows[0]!.password_encryption).toBe('scram-sha-256');
    } finally {
      await c.end();
    }
  });

  it('has no password on the server command line', () => {
    const info = stackInfo().postgres!;
    const password = readFileSync(info.passwordFile, 'utf8').trim();
    const cmdline = readFileSync(`/proc/${info.pids[0]}/cmdline`, 'utf8').split('\0').join(' ');
    expect(cmdline).toMatch(/postgres -D \S+\/postgres\/data/);
    expect(cmdline).not.toContain(password);
  });
});

describe('a PostgreSQL of this file (stop and start)', () => {
  let own: OwnPostgres | undefined;
  // A short name: the unix socket path under .local/ has at most 107 bytes.
  const name = `t${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
  afterAll(async () => {
    await own?.remove();
  });

  it('keeps a written row across a stop and a start; while stopped, connecting fails', async () => {
    own = await startOwnPostgres(name);
    const settings = own.connection('cn');
    const table = tableName();
    const c = await connect(settings);
    await c.query(`CREATE TABLE ${table} (id text PRIMARY KEY, n int NOT NULL)`);
    await c.query(`INSERT INTO ${table} VALUES ('kept', 42)`);
    await c.end();

    await own.stop();
    const down = await connectError(settings);
    expect(down?.message).toMatch(/ECONNREFUSED/);

    await own.start();
    const again = await connect(settings);
    try {
      expect((await again.query(`SELECT id, n FROM ${table}`)).rows).toEqual([{ id: 'kept', n: 42 }]);
    } finally {
      await again.query(`DROP TABLE ${table}`);
      await again.end();
    }
  });

  it('negative control: with pg_hba.conf switched to trust a wrong password gets in; the next start puts scram-sha-256 back', async () => {
    expect(own).toBeDefined();
    const settings = own!.connection('in');
    const wrong = { ...settings, password: 'not-the-password' };
    expect((await connectError(wrong))?.code).toBe('28P01');

    // Protection off: what a trust line would let through (the superuser reloads over the unix socket).
    const inst = postgresInstance(loadStackConfig(), { name, port: own!.port });
    writeFileSync(path.join(inst.dataDir, 'pg_hba.conf'), 'local all postgres peer map=stack\nhost all all 127.0.0.1/32 trust\n');
    const admin = new pg.Client({ host: inst.socketDir, port: inst.port, user: 'postgres', database: 'postgres' });
    await admin.connect();
    await admin.query('SELECT pg_reload_conf()');
    await admin.end();
    expect(await connectError(wrong)).toBeUndefined();

    // The stack's start (also of a running server) rewrites the settings and reloads them.
    await own!.start();
    expect((await connectError(wrong))?.code).toBe('28P01');
  });
});
