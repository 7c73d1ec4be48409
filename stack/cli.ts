// `npm run stack:up|stack:down|stack:status|stack:fetch [-- --brokers 3 | --secure | --monitoring | --clickhouse-cluster]`.
// A configuration or environment problem prints ONE line saying what is wrong and what to do, and exits 1;
// anything else is a bug in the stack scripts and exits 2 with its stack trace.
import { loadStackConfig } from './config.ts';
import { isStackError } from './errors.ts';
import { fetchKafkaJars } from './kafka.ts';
import { fetchZooKeeperJars, zookeeperPaths } from './clickhouse-cluster.ts';
import { parseCliArgs } from './args.ts';
import { down, downParts, downSecureStack, status, up, upSecureStack } from './stack.ts';

async function main(): Promise<number> {
  const args = parseCliArgs(process.argv.slice(2));
  const config = loadStackConfig();
  const log = (line: string) => console.log(line);
  switch (args.command) {
    case 'fetch': {
      const r = await fetchKafkaJars(config);
      log(`Kafka ${config.kafka.version} jars ${r} in ${config.kafka.libs}`);
      const z = await fetchZooKeeperJars(config);
      log(`ZooKeeper jars (ClickHouse cluster) ${z} in ${zookeeperPaths(config).libs}`);
      return 0;
    }
    case 'up': {
      if (args.secure) {
        const r = await upSecureStack(config, log);
        log(`secure kafka       ${r.kafkaBrokers.join(',')}  SASL_SSL, SCRAM-SHA-512, CA ${r.caFile}`);
        log(`secure clickhouse  ${r.clickhouseUrl}`);
        log(`passwords          ${r.secretsDir}/ (mode 0600; one file per principal/user)`);
        log(`${r.started.length ? `started ${r.started.join(', ')}` : 'everything was already running'} in ${(r.ms / 1000).toFixed(1)} s`);
        return 0;
      }
      const r = await up(
        { brokers: args.brokers ?? 1, log, ...(args.monitoring ? { monitoring: true } : {}), ...(args.clickhouseCluster ? { clickhouseCluster: true } : {}) },
        config,
      );
      const s = r.state;
      const k = args.brokers === 3 ? s.kafkaCluster : s.kafka;
      log(`kafka${args.brokers === 3 ? ' cluster' : ''}  ${k.bootstrapServers.join(',')}  (Kafka ${k.version})`);
      log(`clickhouse     ${s.clickhouse.url}  native ${s.clickhouse.nativePort}  (ClickHouse ${s.clickhouse.version ?? '?'})`);
      log(`chdb           ${s.chdb.available ? `engine ${s.chdb.engineVersion}` : `unavailable: ${s.chdb.error}`}`);
      log(
        `postgres       ${s.postgres.host}:${s.postgres.port}  user ${s.postgres.user}, password file ${s.postgres.passwordFile}, databases ${Object.values(s.postgres.databases).join(',')}  (PostgreSQL ${s.postgres.version?.split(' ')[0] ?? '?'})`,
      );
      if (args.clickhouseCluster)
        log(
          `ch cluster     ${Object.entries(s.clickhouseCluster.urls)
            .map(([n, u]) => `${n} ${u}`)
            .join(', ')}  (ZooKeeper ${s.clickhouseCluster.zookeeper})`,
        );
      if (args.monitoring) log(`prometheus     ${s.prometheus.url}  (rules deploy/prometheus/alerts.yml; targets in ${config.home}/prometheus/targets/)`);
      log(
        `${r.started.length ? `started ${r.started.join(', ')}` : 'everything was already running'} in ${(r.ms / 1000).toFixed(1)} s; addresses in ${config.home}/stack.json`,
      );
      return 0;
    }
    case 'down': {
      if (args.secure) {
        const stopped = await downSecureStack(config);
        log(stopped.length ? `stopped ${stopped.join(', ')}` : 'the secured stack was not running');
        return 0;
      }
      if (args.monitoring || args.clickhouseCluster) {
        const only = await downParts({ monitoring: args.monitoring === true, clickhouseCluster: args.clickhouseCluster === true }, config);
        log(only.length ? `stopped ${only.join(', ')}` : 'nothing of those parts was running');
        return 0;
      }
      const r = await down({ ...(args.brokers ? { brokers: args.brokers } : {}), log }, config);
      if (r.stopped.length === 0) log('nothing of the stack was running');
      return 0;
    }
    case 'status': {
      const lines = await status(config);
      for (const l of lines) {
        const st = l.answers ? 'answers' : l.running ? 'RUNNING, NOT ANSWERING' : 'not running';
        log(`${l.part.padEnd(17)} ${st.padEnd(22)} ${l.address.padEnd(40)} ${l.detail}`);
      }
      const core = lines.filter((l) => l.part === 'kafka' || l.part === 'clickhouse');
      return core.every((l) => l.answers) ? 0 : 3;
    }
  }
}

const interrupted = (sig: string) => {
  // The services run detached (their own process group), so Ctrl-C does not reach them; an interrupted
  // `up` may leave one starting. Say how to clean up rather than guessing here.
  console.error(`stack: interrupted by ${sig}; run npm run stack:down to stop anything that was starting`);
  process.exit(130);
};
process.once('SIGINT', () => interrupted('SIGINT'));
process.once('SIGTERM', () => interrupted('SIGTERM'));

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (isStackError(e)) {
      console.error(`stack: ${e.message}`);
      process.exit(1);
    }
    console.error(e);
    process.exit(2);
  },
);
