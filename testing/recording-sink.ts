/** An ingest RecordSink that keeps what it is sent in memory: ingest's HTTP tests without Kafka. */
import type { RecordSink } from '../ingest/http.ts';
import type { BatchRecords } from '../ingest/records.ts';

export class RecordingSink implements RecordSink {
  sent: BatchRecords[] = [];
  async start() {}
  async send(r: BatchRecords) {
    this.sent.push(r);
  }
  async ready() {
    return { ok: true, checks: { sink: 'memory' } };
  }
  async stop() {}
}
