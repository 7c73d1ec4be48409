import kafkajs from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { IngestError } from './errors.ts';
import { retriableAtStart } from './produce.ts';

const { KafkaJSConnectionError, KafkaJSNonRetriableError, KafkaJSNumberOfRetriesExceeded, KafkaJSProtocolError, KafkaJSSASLAuthenticationError } = kafkajs;

/** Builds a kafkajs error with the arguments kafkajs itself passes (its .d.ts declares fewer). */
function kafkaError(cls: abstract new (...a: never[]) => Error, ...args: unknown[]): Error {
  return Reflect.construct(cls, args) as Error;
}

/** A protocol error as kafkajs builds it from a broker's error code (protocol/error.js). */
function protocolError(type: string, code: number, retriable: boolean, message: string): Error {
  return new KafkaJSProtocolError(Object.assign(new Error(message), { type, code, retriable }) as unknown as Error);
}

describe('retriableAtStart (wait for Kafka at start, or give up)', () => {
  it('waits for a broker that is not up yet or has no leader yet, also when kafkajs gave up retrying', () => {
    const refused = new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:19092');
    expect(retriableAtStart(refused)).toBe(true);
    expect(retriableAtStart(new KafkaJSNumberOfRetriesExceeded(refused, { retryCount: 3, retryTime: 800 }))).toBe(true);
    const notLeader = protocolError('NOT_LEADER_FOR_PARTITION', 6, true, 'This server is not the leader for that topic-partition');
    const gaveUp = new KafkaJSNumberOfRetriesExceeded(notLeader, { retryCount: 3, retryTime: 800 });
    expect(gaveUp.retriable).toBe(false); // what the old check looked at first
    expect(retriableAtStart(gaveUp)).toBe(true);
    // Nested retriers (admin over cluster): the outer wrapper is non-retriable, the cause is not.
    expect(retriableAtStart(kafkaError(KafkaJSNonRetriableError, gaveUp, { cause: notLeader }))).toBe(true);
    expect(
      retriableAtStart(
        protocolError('LEADER_NOT_AVAILABLE', 5, true, 'There is no leader for this topic-partition as we are in the middle of a leadership election'),
      ),
    ).toBe(true);
    expect(retriableAtStart(new IngestError('INGEST_KAFKA_UNAVAILABLE', 'Kafka did not acknowledge', { retriable: true }))).toBe(true);
  });

  it('gives up at once on what waiting cannot fix: a missing topic in verify mode, refused credentials, no authorisation', () => {
    expect(retriableAtStart(new Error('missing Kafka topics on 127.0.0.1:19092: t (create them, or start with INGEST_TOPICS=create)'))).toBe(false);
    expect(retriableAtStart(kafkaError(KafkaJSSASLAuthenticationError, 'SASL SCRAM-SHA-512 authentication failed: Connection refused by the server'))).toBe(
      false,
    );
    const denied = protocolError('TOPIC_AUTHORIZATION_FAILED', 29, false, 'Not authorized to access topics: [Topic authorization failed]');
    expect(retriableAtStart(denied)).toBe(false);
    expect(retriableAtStart(new KafkaJSNumberOfRetriesExceeded(denied, { retryCount: 0, retryTime: 100 }))).toBe(false);
    expect(retriableAtStart(new IngestError('INGEST_KAFKA_UNAVAILABLE', 'Connection error, but the code says no'))).toBe(false);
  });
});
