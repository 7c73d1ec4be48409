import { describe, expect, it } from 'vitest';
import { HTTP_STATUS, INGEST_ERROR_CODES, isRetryable } from './errors.ts';

describe('errors table', () => {
  it('maps every code to exactly one status, and only saturation/infra codes are retryable', () => {
    expect(Object.keys(HTTP_STATUS).sort()).toEqual([...INGEST_ERROR_CODES].sort());
    for (const c of INGEST_ERROR_CODES) {
      const s = HTTP_STATUS[c];
      expect(s).toBeGreaterThanOrEqual(400);
      expect(s === 429 || s === 503).toBe(isRetryable(c));
    }
    expect(HTTP_STATUS.INGEST_BODY_TOO_LARGE).toBe(413);
    expect(HTTP_STATUS.INGEST_DECOMPRESSED_TOO_LARGE).toBe(413);
    expect(HTTP_STATUS.INGEST_UNSUPPORTED_CONTENT_TYPE).toBe(415);
    expect(HTTP_STATUS.INGEST_OVERLOADED).toBe(429);
    expect(HTTP_STATUS.INGEST_KAFKA_UNAVAILABLE).toBe(503);
    // A body that cannot be read at all is the client's problem, and never retryable.
    for (const c of INGEST_ERROR_CODES.filter((x) => x.startsWith('INGEST_CONTAINER_') || x === 'INGEST_BAD_JSON' || x === 'INGEST_BAD_GZIP')) {
      expect(HTTP_STATUS[c]).toBe(400);
    }
  });
});
