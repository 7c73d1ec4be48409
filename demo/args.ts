/** Arguments of `npm run demo [-- --duration 30 --rate 2000 --devices 5000 --keep]`. */
import { DemoError } from './errors.ts';

export interface DemoArgs {
  /** Seconds the simulator posts for. */
  durationS: number;
  /** Target events per second over both ingest workers. */
  rate: number;
  devices: number;
  seed: number;
  /** Keep everything running after the report until Ctrl-C. */
  keep: boolean;
  /** Ports: ingest a = base, ingest b = base + 1, aggregator = base + 2, dashboard = base + 8. */
  portBase: number;
  help: boolean;
}

export const DEMO_DEFAULTS: DemoArgs = { durationS: 30, rate: 2000, devices: 5000, seed: 1, keep: false, portBase: 18180, help: false };

export const DEMO_USAGE = `usage: npm run demo [-- options]
  --duration S    seconds of simulated traffic (default ${DEMO_DEFAULTS.durationS}; 1..3600)
  --rate N        events per second over both ingest workers (default ${DEMO_DEFAULTS.rate}; 10..50000)
  --devices N     devices in the population (default ${DEMO_DEFAULTS.devices}; 10..1000000)
  --seed N        population seed (default ${DEMO_DEFAULTS.seed})
  --keep          after the report, keep everything running (dashboard, /metrics) until Ctrl-C
  --port-base P   ingest on P and P+1, aggregator on P+2, dashboard on P+8 (default ${DEMO_DEFAULTS.portBase})`;

export function parseDemoArgs(argv: readonly string[]): DemoArgs {
  const out: DemoArgs = { ...DEMO_DEFAULTS };
  const bad = (msg: string) => new DemoError('DEMO_BAD_ARGUMENT', `${msg}\n${DEMO_USAGE}`);
  const int = (name: string, v: string | undefined, min: number, max: number): number => {
    if (v === undefined || v.startsWith('--')) throw bad(`${name} needs a value`);
    if (!/^\d+$/.test(v)) throw bad(`${name} "${v}": expected a whole number`);
    const n = Number(v);
    if (n < min || n > max) throw bad(`${name} ${n}: expected ${min}..${max}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const [name, inline] = a.startsWith('--') && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    const value = () => inline ?? argv[++i];
    switch (name) {
      case '--duration':
        out.durationS = int(name, value(), 1, 3600);
        break;
      case '--rate':
        out.rate = int(name, value(), 10, 50_000);
        break;
      case '--devices':
        out.devices = int(name, value(), 10, 1_000_000);
        break;
      case '--seed':
        out.seed = int(name, value(), 0, 2 ** 32 - 1);
        break;
      case '--port-base':
        out.portBase = int(name, value(), 1024, 65_000);
        break;
      case '--keep':
        if (inline !== undefined) throw bad('--keep takes no value');
        out.keep = true;
        break;
      case '--help':
      case '-h':
        out.help = true;
        break;
      default:
        throw bad(`unknown argument "${a}"`);
    }
  }
  return out;
}
