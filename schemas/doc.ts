/**
 * Generates CATEGORIES.md (the table a privacy officer reads against the policy) and
 * avro/generated/personal.<class>.avsc from the map and schemas. `npm run schemas:doc` writes them; the unit
 * test `doc.test.ts` fails when the checked-in files differ from what this produces.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CATEGORIES, RESIDENCY, type CategoryMap } from './categories.ts';
import type { RecordSchema } from './classify.ts';
import { compileSplit } from './compile.ts';
import { readSchema } from './load.ts';

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

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(new URL('./CATEGORIES.md', import.meta.url), categoriesMarkdown());
  mkdirSync(new URL('./avro/generated/', import.meta.url), { recursive: true });
  for (const { file, json } of personalSchemaFiles()) writeFileSync(new URL(`./avro/generated/${file}`, import.meta.url), json);
  console.log(
    `wrote schemas/CATEGORIES.md and ${personalSchemaFiles()
      .map((f) => `schemas/avro/generated/${f.file}`)
      .join(', ')}`,
  );
}
