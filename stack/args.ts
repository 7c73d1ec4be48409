// Command-line arguments of stack/cli.ts, parsed apart from it so unit tests can import them.
import { StackError } from './errors.ts';

export const USAGE = 'usage: tsx stack/cli.ts <up|down|status|fetch> [--brokers 1|3 | --secure] [--monitoring] [--clickhouse-cluster]';

export interface CliArgs {
  command: 'up' | 'down' | 'status' | 'fetch';
  brokers?: 1 | 3;
  /** The separate secured stack (stack/secure.ts). */
  secure?: true;
  /** Prometheus with the alert rules (stack/monitoring.ts), next to the plain stack. */
  monitoring?: true;
  /** ZooKeeper + the 2 x 2 ClickHouse cluster (stack/clickhouse-cluster.ts), next to the plain stack. */
  clickhouseCluster?: true;
}

export function parseCliArgs(argv: string[]): CliArgs {
  const [command, ...rest] = argv;
  if (command !== 'up' && command !== 'down' && command !== 'status' && command !== 'fetch') {
    throw new StackError('STACK_CONFIG_INVALID', `unknown command ${command ?? '(none)'}: ${USAGE}`);
  }
  const args: CliArgs = { command };
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i] as string;
    if (a === '--secure') {
      args.secure = true;
      continue;
    }
    if (a === '--monitoring') {
      args.monitoring = true;
      continue;
    }
    if (a === '--clickhouse-cluster') {
      args.clickhouseCluster = true;
      continue;
    }
    const m = /^--brokers(?:=(.*))?$/.exec(a);
    if (!m) throw new StackError('STACK_CONFIG_INVALID', `unknown option ${a}: ${USAGE}`);
    const v = m[1] ?? rest[++i];
    if (v !== '1' && v !== '3') throw new StackError('STACK_CONFIG_INVALID', `--brokers ${v ?? ''}: expected 1 (single node) or 3 (fault-test cluster)`);
    args.brokers = Number(v) as 1 | 3;
  }
  if (args.secure && args.brokers)
    throw new StackError('STACK_CONFIG_INVALID', `--secure starts its own single node; it does not combine with --brokers: ${USAGE}`);
  if ((args.monitoring || args.clickhouseCluster) && (args.secure || args.brokers || (command !== 'up' && command !== 'down')))
    throw new StackError(
      'STACK_CONFIG_INVALID',
      `--monitoring and --clickhouse-cluster go with up (next to the plain stack) or down (only that part; a bare down stops everything): ${USAGE}`,
    );
  return args;
}
