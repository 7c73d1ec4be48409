/**
 * Generates CATEGORIES.md (the table a privacy officer reads against the policy) and
 * avro/generated/personal.<class>.avsc from the map and schemas. `npm run schemas:doc` writes them; the unit
 * test `doc.test.ts` fails when the checked-in files differ from what this produces.
 *
 * It also keeps the history of the personal schemas (avro/generated/history/personal.<class>.<fingerprint>.avsc):
 * every version ever generated, the current one included. A personal record names its writer schema by
 * fingerprint (wire.ts, single-object encoding) and stays on its class's topic up to the class's
 * retention after a map change replaced that schema, so whoever reads personal records (`npm run
 * rights -- access`: policy 5.2, everything held about a person) registers every version of the class
 * (`historicalWriters`). `doc.test.ts` fails when a version committed to git has no history file.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CATEGORIES, RESIDENCY, type CategoryMap } from './categories.ts';
import type { RecordSchema } from './classify.ts';
import { compileSplit } from './compile.ts';
import { readSchema, typeOf, type Schema } from './load.ts';
import { fingerprintOf, type AvroType } from './wire.ts';

const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function categoriesMarkdown(map: CategoryMap = CATEGORIES as CategoryMap): string {
  const p = compileSplit({ categories: map });
  const fieldsOf = new Map<string, string[]>();
  for (const f of p.fields.values()) {
    if (f.step.kind === 'branch') continue;
    (fieldsOf.get(f.category) ?? fieldsOf.set(f.category, []).get(f.category)!).push(`\`${f.path}\``);
  }
  const lines = [
    '# Data categories (generated from `schemas/categories.ts` by `npm run schemas:doc`; do not edit)',
    '',
    'Each row is one category of the privacy policy. Personal categories go only to the personal record (of the',
    'residency zone) and reach the non-personal events topic only through the listed derivations. Retention:',
    "policy 4.4 gives no figures, so these are the project's choices (P0D = used inside ingest only, never stored).",
    '',
    '| Category | Personal | Policy (section: words) | Purpose | Retention | Consent | Residency | Derivations to non-personal output | Batch fields |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const [name, e] of Object.entries(map)) {
    const policy = e.policy.map((q) => `${q.section}: "${esc(q.quote)}"`).join('<br>');
    lines.push(
      `| \`${name}\` ${esc(e.title)} | ${e.personal ? 'yes' : 'no'} | ${policy} | ${esc(e.purpose)} | ${e.retention} (${esc(e.retentionWhy)}) | ${e.consent} | ${e.residency ? 'yes' : 'no'} | ${e.derivations.join(', ')} | ${(fieldsOf.get(name) ?? ['-']).join(' ')} |`,
    );
  }
  lines.push('', '## Residency (policy 6)', '', 'SIM mobile country code first, settings region when there is no SIM, else `row`.', '');
  lines.push('| MCC | Zone |', '|---|---|', ...Object.entries(RESIDENCY.byMcc).map(([k, v]) => `| ${k} | ${v} |`));
  lines.push('', '| Region | Zone |', '|---|---|', ...Object.entries(RESIDENCY.byRegion).map(([k, v]) => `| ${k} | ${v} |`), '');
  lines.push('## EventFact (non-personal output) wiring', '', '| Output field | From | Via |', '|---|---|---|');
  for (const s of (readSchema('event-fact') as RecordSchema).fields) {
    lines.push(
      `| ${s.name} | ${[s.from]
        .flat()
        .map((x) => `\`${x}\``)
        .join(', ')} | ${s.via} |`,
    );
  }
  lines.push('');
  return lines.join('\n');
}

/** The generated personal record schemas (one per retention class), with the category of every field (the build checks them). */
export function personalSchemaFiles(): Array<{ file: string; json: string }> {
  return compileSplit().personalClasses.map((c) => ({ file: `personal.${c.name}.avsc`, json: `${JSON.stringify(c.schema, null, 2)}\n` }));
}

export const GENERATED_DIR = new URL('./avro/generated/', import.meta.url);
/** Every generated personal schema version, the current ones included: `personal.<class>.<fingerprint>.avsc`. */
export const PERSONAL_HISTORY_DIR = new URL('./avro/generated/history/', import.meta.url);

const GENERATED_FILE = /^personal\.([a-z0-9]+)\.avsc$/;
const HISTORY_FILE = /^personal\.([a-z0-9]+)\.([0-9a-f]{16})\.avsc$/;

/** One file's name and text. */
export interface SchemaFile {
  file: string;
  json: string;
}

/** The retention class a generated file is of (`personal.p30d.avsc` -> `p30d`); undefined for any other file. */
export const classOfGenerated = (file: string): string | undefined => GENERATED_FILE.exec(file)?.[1];

/** The fingerprint a record written with this schema carries in its header, in hex as `SCHEMA_UNKNOWN_FINGERPRINT` names it. */
export function fingerprintHexOf(json: string): string {
  return fingerprintOf(typeOf(JSON.parse(json) as Schema)).toString('hex');
}

/** The history file of a version of a class's schema. */
export function historyFileOf(cls: string, json: string): string {
  return `personal.${cls}.${fingerprintHexOf(json)}.avsc`;
}

/** The files of a directory (none when it does not exist), sorted. */
export function readSchemaFiles(dir: URL): SchemaFile[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => e.name)
    .sort()
    .map((file) => ({ file, json: readFileSync(new URL(file, dir), 'utf8') }));
}

/**
 * The versions of a class's personal schema the history holds besides `current` (records written by
 * an ingest before a map change), as types to register with a reader: `RecordCodec.addWriter` to read
 * them as the current schema, or a `WriterRegistry` to read each as it was written (what rights
 * access does, so fields the current schema dropped still show).
 */
export function historicalWriters(cls: string, current: AvroType, dir: URL = PERSONAL_HISTORY_DIR): AvroType[] {
  const skip = fingerprintOf(current).toString('hex');
  const out: AvroType[] = [];
  for (const { file, json } of readSchemaFiles(dir)) {
    const m = HISTORY_FILE.exec(file);
    if (!m || m[1] !== cls || m[2] === skip) continue;
    out.push(typeOf(JSON.parse(json) as Schema));
  }
  return out;
}

/**
 * Writes the generated personal schemas into `dir` and keeps every version in `historyDir`: the text each
 * file replaces, and the new one; a generated file of a class no longer generated is kept there and removed. A
 * version already kept under its fingerprint is left as it is (the same writer schema on the wire).
 * Returns the history files it added.
 */
export function writePersonalSchemas(files: readonly SchemaFile[], dir: URL = GENERATED_DIR, historyDir: URL = PERSONAL_HISTORY_DIR): string[] {
  mkdirSync(historyDir, { recursive: true });
  const added: string[] = [];
  const keep = (cls: string, json: string) => {
    const name = historyFileOf(cls, json);
    const at = new URL(name, historyDir);
    if (existsSync(at)) return;
    writeFileSync(at, json);
    added.push(name);
  };
  const wanted = new Set(files.map((f) => f.file));
  for (const old of readSchemaFiles(dir)) {
    const cls = classOfGenerated(old.file);
    if (!cls) continue;
    keep(cls, old.json);
    if (!wanted.has(old.file)) rmSync(new URL(old.file, dir));
  }
  for (const { file, json } of files) {
    const cls = classOfGenerated(file);
    if (!cls) throw new Error(`${file}: not a generated personal schema (personal.<class>.avsc)`);
    keep(cls, json);
    writeFileSync(new URL(file, dir), json);
  }
  return added;
}

/**
 * What is wrong with the history (`historyFiles`, every file of the history directory) against the
 * generated personal schemas: a version of `versions` (the current files, and every one committed
 * before: doc.test.ts reads them from git) without its history file, or a history file whose name is
 * not its class and writer fingerprint. Empty when a reader given the history reads every record any
 * of those versions wrote.
 */
export function personalHistoryProblems(versions: ReadonlyArray<SchemaFile & { from: string }>, historyFiles: readonly SchemaFile[]): string[] {
  const problems: string[] = [];
  const kept = new Set<string>();
  for (const { file, json } of historyFiles) {
    const m = HISTORY_FILE.exec(file);
    if (!m) {
      problems.push(`history/${file}: not personal.<class>.<fingerprint>.avsc`);
      continue;
    }
    let schema: Schema;
    let fp: string;
    try {
      schema = JSON.parse(json) as Schema;
      fp = fingerprintOf(typeOf(schema)).toString('hex');
    } catch (e) {
      problems.push(`history/${file}: not an Avro schema (${(e as Error).message})`);
      continue;
    }
    if (fp !== m[2]) problems.push(`history/${file}: its writer fingerprint is ${fp}`);
    else if (schema.namespace !== `telemetry.v1.personal.${m[1]}`)
      problems.push(`history/${file}: namespace ${String(schema.namespace)} is not of class ${m[1]}`);
    else kept.add(file);
  }
  for (const v of versions) {
    const cls = classOfGenerated(v.file);
    if (!cls) continue;
    const want = historyFileOf(cls, v.json);
    if (!kept.has(want)) {
      problems.push(
        `${v.file} of ${v.from} (fingerprint ${fingerprintHexOf(v.json)}) is not in avro/generated/history/: records it wrote no longer decode; keep it as history/${want} (npm run schemas:doc keeps the versions it replaces)`,
      );
    }
  }
  return problems;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(new URL('./CATEGORIES.md', import.meta.url), categoriesMarkdown());
  mkdirSync(GENERATED_DIR, { recursive: true });
  const files = personalSchemaFiles();
  const kept = writePersonalSchemas(files);
  console.log(`wrote schemas/CATEGORIES.md and ${files.map((f) => `schemas/avro/generated/${f.file}`).join(', ')}`);
  if (kept.length) console.log(`kept in schemas/avro/generated/history/: ${kept.join(', ')} (commit them: records written with each stay readable)`);
}
