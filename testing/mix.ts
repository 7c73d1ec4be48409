/**
 * Mix settings for tests that post a batch or a few at a time and are about something other than
 * linkage. Ingest's defaults hold a lone batch up to INGEST_MIX_MAX_WAIT_MS (2 s) while the mix waits
 * for a crowd (ingest/README.md, "Linkage of the topics"), which would only slow such tests down; these
 * are the defaults the suite ran with before that wait grew. ingest/linkage.int.test.ts and
 * `npm run bench:linkage` run ingest's own defaults.
 */
export const QUICK_MIX = {
  INGEST_MIX_WINDOW_MS: '50',
  INGEST_MIX_MIN_BATCHES: '8',
  INGEST_MIX_MAX_WAIT_MS: '250',
  INGEST_MIX_MAX_BATCHES: '32',
} as const;
