import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { categoriesMarkdown, personalSchemaJson } from './doc.ts';

describe('generated docs are up to date (run `npm run schemas:doc`)', () => {
  it('CATEGORIES.md', () => {
    expect(readFileSync(new URL('./CATEGORIES.md', import.meta.url), 'utf8')).toBe(categoriesMarkdown());
  });
  it('avro/generated/personal.avsc', () => {
    expect(readFileSync(new URL('./avro/generated/personal.avsc', import.meta.url), 'utf8')).toBe(personalSchemaJson());
  });
});
