import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { categoriesMarkdown, personalSchemaFiles } from './doc.ts';

describe('generated docs are up to date (run `npm run schemas:doc`)', () => {
  it('CATEGORIES.md', () => {
    expect(readFileSync(new URL('./CATEGORIES.md', import.meta.url), 'utf8')).toBe(categoriesMarkdown());
  });
  it('avro/generated/personal.<class>.avsc: one file per retention class, no stale one', () => {
    const files = personalSchemaFiles();
    expect(readdirSync(new URL('./avro/generated/', import.meta.url)).sort()).toEqual(files.map((f) => f.file).sort());
    for (const { file, json } of files) expect(readFileSync(new URL(`./avro/generated/${file}`, import.meta.url), 'utf8')).toBe(json);
  });
});
