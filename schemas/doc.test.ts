import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compileSplit } from './compile.ts';
import {
  categoriesMarkdown,
  classOfGenerated,
  fingerprintHexOf,
  GENERATED_DIR,
  historicalWriters,
  historyFileOf,
  PERSONAL_HISTORY_DIR,
  personalHistoryProblems,
  personalSchemaFiles,
  readSchemaFiles,
  writePersonalSchemas,
  type SchemaFile,
} from './doc.ts';
import { fingerprintOf } from './wire.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const GENERATED = 'schemas/avro/generated/';

/** Every personal.<class>.avsc ever committed under avro/generated/ (the versions records on the topics may name). */
function committedVersions(): Array<SchemaFile & { from: string }> {
  const git = (...args: string[]) => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20 });
  const out: Array<SchemaFile & { from: string }> = [];
  for (const commit of git('log', '--format=%H', '--', GENERATED).split('\n').filter(Boolean)) {
    for (const path of git('ls-tree', '--name-only', commit, GENERATED).split('\n').filter(Boolean)) {
      const file = path.slice(GENERATED.length);
      if (classOfGenerated(file)) out.push({ file, json: git('show', `${commit}:${path}`), from: `commit ${commit.slice(0, 10)}` });
    }
  }
  return out;
}

/** The p30d schema before crash traces and app statuses stopped being stored, from the history. */
const OLD_P30D = 'personal.p30d.51101d3ffbd085d2.avsc';
const oldP30d = () => readFileSync(new URL(OLD_P30D, PERSONAL_HISTORY_DIR), 'utf8');
const tmpDirs = () => {
  const root = mkdtempSync(join(tmpdir(), 'schemas-history-'));
  const dir = (name: string) => {
    mkdirSync(join(root, name));
    return pathToFileURL(`${join(root, name)}/`);
  };
  return { generated: dir('generated'), history: dir('history') };
};
const current = () => personalSchemaFiles().map((f) => ({ ...f, from: 'the generator' }));

describe('generated docs are up to date (run `npm run schemas:doc`)', () => {
  it('CATEGORIES.md', () => {
    expect(readFileSync(new URL('./CATEGORIES.md', import.meta.url), 'utf8')).toBe(categoriesMarkdown());
  });
  it('avro/generated/personal.<class>.avsc: one file per retention class, no stale one', () => {
    const files = personalSchemaFiles();
    expect(readSchemaFiles(GENERATED_DIR).map((f) => f.file)).toEqual(files.map((f) => f.file).sort());
    for (const { file, json } of files) expect(readFileSync(new URL(file, GENERATED_DIR), 'utf8')).toBe(json);
  });
  it('avro/generated/history/ holds every personal schema version generated now or ever committed, each under its class and writer fingerprint', () => {
    const committed = committedVersions();
    // The repository's own history: the p30d schema changed once (crash traces and app statuses no longer
    // stored), and its older version is among the committed ones.
    expect(committed.map((v) => fingerprintHexOf(v.json))).toContain('51101d3ffbd085d2');
    const history = readSchemaFiles(PERSONAL_HISTORY_DIR);
    expect(personalHistoryProblems([...current(), ...committed], history)).toEqual([]);
    // Negative control: the same check without the replaced p30d version names it.
    expect(
      personalHistoryProblems(
        [...current(), ...committed],
        history.filter((f) => f.file !== OLD_P30D),
      ),
    ).toEqual([expect.stringMatching(/^personal\.p30d\.avsc of commit [0-9a-f]{10} \(fingerprint 51101d3ffbd085d2\) is not in/)]);
  });
});

describe('history of the personal schemas (schemas/doc.ts)', () => {
  it('the generator keeps the version it replaces; an overwrite that keeps only the current versions (the negative control) loses it and the guard names it', () => {
    const replaced = { file: 'personal.p30d.avsc', json: oldP30d(), from: 'the previous commit' };
    const kept = tmpDirs();
    writeFileSync(new URL(replaced.file, kept.generated), replaced.json);
    const added = writePersonalSchemas(personalSchemaFiles(), kept.generated, kept.history);
    expect(added).toContain(OLD_P30D);
    expect(readFileSync(new URL(OLD_P30D, kept.history), 'utf8')).toBe(replaced.json);
    expect(readSchemaFiles(kept.generated)).toEqual(personalSchemaFiles().sort((a, b) => a.file.localeCompare(b.file)));
    expect(personalHistoryProblems([...current(), replaced], readSchemaFiles(kept.history))).toEqual([]);
    expect(writePersonalSchemas(personalSchemaFiles(), kept.generated, kept.history)).toEqual([]); // again: nothing to add

    // Negative control: the files overwritten and only the current versions in the history.
    const plain = tmpDirs();
    writeFileSync(new URL(replaced.file, plain.generated), replaced.json);
    for (const { file, json } of personalSchemaFiles()) {
      writeFileSync(new URL(file, plain.generated), json);
      writeFileSync(new URL(historyFileOf(classOfGenerated(file)!, json), plain.history), json);
    }
    expect(personalHistoryProblems([...current(), replaced], readSchemaFiles(plain.history))).toEqual([
      expect.stringMatching(/^personal\.p30d\.avsc of the previous commit \(fingerprint 51101d3ffbd085d2\) is not in avro\/generated\/history\//),
    ]);
    // The current versions are required too.
    expect(personalHistoryProblems(current(), [])).toHaveLength(current().length);
  });

  it('a class no longer generated is kept in the history and leaves avro/generated/', () => {
    const d = tmpDirs();
    const gone = { file: 'personal.p1d.avsc', json: oldP30d().replace('telemetry.v1.personal.p30d', 'telemetry.v1.personal.p1d') };
    writePersonalSchemas([...personalSchemaFiles(), gone], d.generated, d.history);
    expect(existsSync(new URL(gone.file, d.generated))).toBe(true);
    writePersonalSchemas(personalSchemaFiles(), d.generated, d.history);
    expect(existsSync(new URL(gone.file, d.generated))).toBe(false);
    expect(personalHistoryProblems([{ ...gone, from: 'before' }], readSchemaFiles(d.history))).toEqual([]);
  });

  it('the guard refuses a history file not named by its class and writer fingerprint, or of another shape', () => {
    const json = oldP30d();
    const wrong = [
      { file: 'personal.p30d.0000000000000000.avsc', json },
      { file: 'personal.p7d.51101d3ffbd085d2.avsc', json },
      { file: 'personal.p30d.avsc', json },
      { file: 'personal.p30d.51101d3ffbd085d3.avsc', json: '{"type": "nonsense"}' },
    ];
    expect(personalHistoryProblems([], wrong)).toEqual([
      expect.stringMatching(/0000000000000000\.avsc: its writer fingerprint is 51101d3ffbd085d2/),
      expect.stringMatching(/personal\.p7d\.51101d3ffbd085d2\.avsc: namespace telemetry\.v1\.personal\.p30d is not of class p7d/),
      expect.stringMatching(/personal\.p30d\.avsc: not personal\.<class>\.<fingerprint>\.avsc/),
      expect.stringMatching(/51101d3ffbd085d3\.avsc: not an Avro schema/),
    ]);
    // The control: the same text under its right name passes.
    expect(personalHistoryProblems([{ file: 'personal.p30d.avsc', json, from: 'before' }], [{ file: OLD_P30D, json }])).toEqual([]);
  });

  it('historicalWriters gives the versions of a class besides the current one', () => {
    const split = compileSplit();
    const p30d = split.personalClasses.find((c) => c.name === 'p30d')!;
    const p7d = split.personalClasses.find((c) => c.name === 'p7d')!;
    // Every kept version of the class but the current one (the history folder's names end in the fingerprint).
    const history = join(ROOT, 'schemas', 'avro', 'generated', 'history');
    const kept = (cls: string, current: string) =>
      readdirSync(history)
        .filter((f) => f.startsWith(`personal.${cls}.`))
        .map((f) => f.split('.')[2]!)
        .filter((fp) => fp !== current)
        .sort();
    const fps = (cls: string, type: Parameters<typeof fingerprintOf>[0]) =>
      historicalWriters(cls, type)
        .map((t) => fingerprintOf(t).toString('hex'))
        .sort();
    const current30 = fingerprintOf(p30d.type).toString('hex');
    expect(fps('p30d', p30d.type)).toEqual(kept('p30d', current30));
    // The versions of p30d before the device record lost the per-event fields: at least two of them.
    expect(fps('p30d', p30d.type)).toEqual(expect.arrayContaining(['51101d3ffbd085d2', '6a84cb592973e8a1']));
    expect(fps('p30d', p30d.type)).not.toContain(current30);
    expect(historicalWriters('p7d', p7d.type)).toEqual([]);
  });
});
