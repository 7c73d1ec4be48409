/** The counting rule of the events contract names real event kinds, and only those count their key. */
import { describe, expect, it } from 'vitest';
import { countsEventKey, eventFactType, KEY_COUNTED_KINDS } from './index.ts';

const kinds = (eventFactType as unknown as { fields: Array<{ name: string; type: { symbols?: string[] } }> }).fields.find((f) => f.name === 'kind')!.type
  .symbols!;

describe('counting rule', () => {
  it('counts the event key of session starts and crashes only', () => {
    expect([...KEY_COUNTED_KINDS]).toEqual(['session_start', 'crash']);
    for (const k of KEY_COUNTED_KINDS) expect(kinds).toContain(k);
    expect(kinds.filter(countsEventKey)).toEqual(['session_start', 'crash']);
    expect(countsEventKey('page_view')).toBe(false);
  });
});
