// The JDK argument file that carries the storage tool's SCRAM users off the command line (stack/kafka.ts,
// withJavaArgFile): every argument reaches the JVM unchanged, whatever it holds (spaces, quotes,
// backslashes, '='/'[' of the --add-scram shape), and the file is gone afterwards. Checked with the real
// launcher: a -D property set from the file is printed back by -XshowSettings:properties.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadStackConfig } from './config.ts';
import { javaArgFileLine, withJavaArgFile } from './kafka.ts';

const config = loadStackConfig();

describe('java argument file', () => {
  it('quotes each argument; a line break cannot be carried', () => {
    expect(javaArgFileLine('SCRAM-SHA-512=[name=a,password=b]')).toBe('"SCRAM-SHA-512=[name=a,password=b]"');
    expect(javaArgFileLine('a "b" \\c')).toBe('"a \\"b\\" \\\\c"');
    expect(() => javaArgFileLine('a\nb')).toThrow(/line break/);
  });

  it('the launcher reads every argument back unchanged, and the file is removed', async () => {
    const value = 'sp ace "quote" back\\slash [name=x,password=y=z] #hash';
    let seen = '';
    const out = await withJavaArgFile([`-Dtelemetry.argfile.check=${value}`, '-XshowSettings:properties', '-version'], async (file) => {
      seen = file;
      expect(existsSync(file)).toBe(true);
      return spawnSync(config.kafka.java, ['-XX:-UsePerfData', `@${file}`], { encoding: 'utf8', timeout: 30_000 });
    });
    expect(existsSync(seen)).toBe(false);
    const line = `${out.stdout}${out.stderr}`.split('\n').find((l) => l.includes('telemetry.argfile.check'));
    expect(line?.trim()).toBe(`telemetry.argfile.check = ${value}`);
  });
});
