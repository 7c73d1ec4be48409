// Vitest setup file of the integration project (vitest.config.ts, setupFiles): runs inside every
// *.int.test.ts file. Its afterAll is registered before the file's own hooks, so it runs after them
// (vitest runs after-hooks in reverse order), once the file's services and clients are stopped: it
// deletes every topic and database named from this file's uniqueName() calls, including the topics
// ingest made itself (INGEST_TOPICS=create) from a uniqueName() prefix. Why: the shared broker and
// server otherwise collect hundreds of test topics; the end-of-run check in
// testing/vitest-global-setup.ts fails the run if anything of it stays behind.
import { afterAll } from 'vitest';
import { deleteWhatThisFileMade } from './cleanup.ts';

afterAll(async () => {
  const r = await deleteWhatThisFileMade();
  if (r.problems.length > 0) console.warn(`[cleanup] could not check or delete this file's topics/databases: ${r.problems.join('; ')}`);
});
