/**
 * `npm run demo [-- --duration 30 --rate 2000 --devices 5000 --keep]`: see demo.ts for what it does.
 *
 * Ctrl-C: during the traffic it stops the simulator early; the report is still printed, then everything
 * the demo started is stopped (during start-up: everything started so far is stopped at once). With
 * --keep, Ctrl-C after the report stops everything. A second Ctrl-C before the cleanup begins shortens
 * the children's drain to 3 s. Exit 0 when the check against the devices' own count passes, 1 otherwise.
 */
import { parseDemoArgs, DEMO_USAGE } from './args.ts';
import { startDemo } from './demo.ts';
import { formatCleanup, formatDemoReport } from './print.ts';
import { DemoError } from './errors.ts';

async function main(): Promise<number> {
  const args = parseDemoArgs(process.argv.slice(2));
  if (args.help) {
    console.log(DEMO_USAGE);
    return 0;
  }
  const interrupt = new AbortController();
  // startDemo has returned. Before, a first Ctrl-C stops the traffic (the report follows); after, it stops everything.
  let started = false;
  let signals = 0;
  let fast = false;
  let keepWaiting: (() => void) | undefined;
  const onSignal = (sig: string) => {
    signals++;
    if (signals === 1) {
      console.log(`\ndemo: ${sig}: ${started ? 'stopping' : 'stopping the traffic (the report follows, then everything is stopped)'}…`);
      interrupt.abort();
      keepWaiting?.();
    } else {
      fast = true;
      console.log(`demo: ${sig} again: stopping faster (3 s drain)`);
    }
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));

  const handle = await startDemo({
    durationS: args.durationS,
    rate: args.rate,
    devices: args.devices,
    seed: args.seed,
    ports: { ingest: [args.portBase, args.portBase + 1], aggregator: args.portBase + 2, dashboard: args.portBase + 8 },
    signal: interrupt.signal,
  });
  started = true;
  console.log(formatDemoReport(handle.report));
  if (args.keep && !interrupt.signal.aborted) {
    console.log('\ndemo: --keep: everything keeps running; Ctrl-C stops it all.');
    await new Promise<void>((resolve) => {
      keepWaiting = resolve;
    });
  } else if (!args.keep) {
    console.log('           (the dashboard stops with the demo now; run with --keep to keep it up until Ctrl-C)');
  }
  console.log('\ndemo: stopping what the demo started…');
  const t = Date.now();
  const c = await handle.stop({ fast });
  console.log(formatCleanup(c));
  console.log(`demo: done (cleanup ${((Date.now() - t) / 1000).toFixed(1)} s)`);
  return handle.report.matches && c.problems.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof DemoError) {
      console.error(`demo: ${e.message}`);
      process.exit(1);
    }
    console.error(e);
    process.exit(2);
  },
);
