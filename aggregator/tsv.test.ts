import { describe, expect, it } from 'vitest';
import { encodeFactsTsv } from './tsv.ts';

describe('encodeFactsTsv', () => {
  it('escapes the bytes TabSeparated reserves and keeps every other byte verbatim', () => {
    const token = Buffer.from([0x5c, 0x09, 0x0a, 0x0d, 0x00, 0xff, 0x41, 1, 2, 3, 4, 5, 6, 7, 8, 0x0b]);
    const out = encodeFactsTsv([
      {
        day: 0,
        app_id: 'a\tb',
        app_version: '1',
        device_model: 'm\\',
        os_version: '1',
        country: 'DE',
        kind: 'crash',
        daily_token: token,
        event_key: Buffer.alloc(16, 0x42),
      },
    ]);
    const expected = Buffer.concat([
      Buffer.from('1970-01-01\ta\\tb\t1\tm\\\\\t1\tDE\tcrash\t'),
      Buffer.from([0x5c, 0x5c, 0x5c, 0x74, 0x5c, 0x6e, 0x5c, 0x72, 0x5c, 0x30, 0xff, 0x41, 1, 2, 3, 4, 5, 6, 7, 8, 0x0b]),
      Buffer.from('\t'),
      Buffer.alloc(16, 0x42),
      Buffer.from('\n'),
    ]);
    expect(out).toEqual(expected);
  });
});
