/**
 * The floor under bench:ingest's CPU per event: a bare node:http server on one thread, nothing of
 * ingest's. It reads each POST body whole and answers 200 with a small JSON body, as ingest does; with
 * `decode` it also reads the Avro container (ingest/container.ts: the deflate block inflated) and decodes
 * the Batch datum with bare avsc before answering. No validation, no policy, no pool, no Kafka.
 *
 * bench/ingest.ts runs the load generator against it and reads its CPU from /proc, as for ingest: what
 * Node's HTTP server alone costs per event at this batch size, and what it costs to also read the
 * batch at all, on the same box in the same run. Any service on this stack pays at least that.
 *
 * Usage: tsx bench/http-floor.ts <port> [read|decode]; prints `listening` once it accepts connections.
 */
import { createServer } from 'node:http';
import { readContainer } from '../ingest/container.ts';
import { batchType } from '../testing/batches.ts';

const port = Number(process.argv[2]);
const mode = process.argv[3] ?? 'read';
if (!Number.isInteger(port) || (mode !== 'read' && mode !== 'decode')) throw new Error('usage: tsx bench/http-floor.ts <port> [read|decode]');

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    let accepted = 0;
    if (mode === 'decode') {
      const c = readContainer(body);
      if (c.ok) accepted = (batchType.fromBuffer(c.value.blocks[0]!.data) as { events: unknown[] }).events.length;
    }
    const out = JSON.stringify({ accepted, dropped_consent: {}, rejected: [] });
    res.writeHead(accepted > 0 || mode === 'read' ? 200 : 400, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
    res.end(out);
  });
});
// As ingest's server: clients keep their connections (ingest/http.ts).
server.keepAliveTimeout = 65_000;
server.listen(port, '127.0.0.1', () => console.log('listening'));
