/**
 * `npm run query`: the analysts' command line (usage in query.ts, the policy in private-query.ts).
 * Connects as the analyst (ANALYST_*, analyst-config.ts); answers are differentially private under the
 * daily budget unless --exact, which is logged. Exit status: 0 answered, 1 refused or failed, 2 bad
 * arguments or settings.
 */
import { ConfigError } from '../runtime/config.ts';
import { analystStoreOptions, loadAnalystConfig } from './analyst-config.ts';
import { AggregatorError, QueryArgumentError } from './errors.ts';
import { privateColumns, runLoggedExactReport, runPrivateReport } from './private-query.ts';
import { formatReport, parseCommandLine, reportColumns, type AnswerMode, type QueryRequest } from './query.ts';
import { openStore } from './store-open.ts';

async function main(): Promise<number> {
  let req: QueryRequest;
  let mode: AnswerMode;
  try {
    ({ req, mode } = parseCommandLine(process.argv.slice(2)));
  } catch (e) {
    if (e instanceof QueryArgumentError) {
      process.stderr.write(`query: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  let cfg: ReturnType<typeof loadAnalystConfig>;
  try {
    cfg = loadAnalystConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`query: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  const store = await openStore(analystStoreOptions(cfg));
  try {
    if (mode.exact) {
      const rows = await runLoggedExactReport(store, req);
      process.stdout.write(formatReport(rows, req.format, reportColumns(req)) + '\n');
      process.stderr.write('query: exact answer (logged in the privacy ledger)\n');
      return 0;
    }
    const a = await runPrivateReport(store, req, mode.epsilon);
    process.stdout.write(formatReport(a.rows, req.format, privateColumns(req)) + '\n');
    process.stderr.write(
      `query: differentially private answer, epsilon ${a.epsilon}${a.repeated ? ' (repeated question: the same answer as before, not charged again)' : ''}; ` +
        `${a.analyst} has spent ${Math.round(a.spentToday * 1000) / 1000} of ${a.dailyEpsilon} today (UTC). *_sd columns: standard deviation of the noise.\n`,
    );
    return 0;
  } catch (e) {
    if (e instanceof AggregatorError) {
      process.stderr.write(`query: ${e.message}\n`);
      return 1;
    }
    throw e;
  } finally {
    await store.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`query: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
