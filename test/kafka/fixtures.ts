/**
 * Shared pieces of the Kafka tests: events built from the bundled capture, the event id the store
 * deduplicates by, a collecting sink, and the broker to run against (librdkafka's mock cluster, or a
 * real one given in KAFKA_BROKERS).
 */
import { join } from 'node:path';
import { analyzeFile } from '../../analyze/analyze.js';
import type { CaptureEvent } from '../../core/event.js';
import { encodeHep3 } from '../../core/hep3.js';
import { createLogger, type Logger, silentLogger } from '../../core/log.js';
import { createKafka } from '../../ingest/kafka/client.js';
import type { ChunkContext } from '../../ingest/kafka/consumer.js';
import { ensureTopics } from '../../ingest/kafka/topics.js';
import { kafkaBrokersFromEnv, type MockKafka, startMockKafka } from '../oracle/kafka-mock.js';
import { REPO_ROOT } from '../oracle/tools.js';
import { eventId } from './event-id.js';

export { eventId };

export const SAMPLE_PCAP = join(REPO_ROOT, 'capture', 'sample', 'calls.pcap');

/**
 * Where the Kafka tests run: a real broker from the environment, else the mock. Tests gate on
 * `needs(KAFKA)`, and on `needs(KAFKA_MOCK)` where they stage outages (test/oracle/tools.ts).
 */
export const REAL_BROKERS = kafkaBrokersFromEnv();

/** Test logs: silent unless CALLSCOPE_TEST_LOG=debug|info|warn. */
export function testLogger(): Logger {
  const level = process.env.CALLSCOPE_TEST_LOG;
  if (level === 'debug' || level === 'info' || level === 'warn' || level === 'error') {
    return createLogger({ level, format: 'text' });
  }
  return silentLogger;
}

/** Everything HEP3 carries, as one string: equal strings mean the same event came back. */
export function canonical(e: CaptureEvent): string {
  return encodeHep3(e).toString('base64');
}

let sample: CaptureEvent[] | null = null;

/** The events of the bundled capture (316: SIP messages and media reports), read once. */
export async function sampleEvents(): Promise<CaptureEvent[]> {
  if (!sample) {
    const events: CaptureEvent[] = [];
    await analyzeFile(SAMPLE_PCAP, { onEvent: (e) => events.push(e) });
    sample = events;
  }
  return sample;
}

/**
 * `n` events made from the sample capture: round r repeats the capture with Call-IDs suffixed
 * `~r<r>` and times shifted by r minutes, so ids are unique and every call keeps its order. Times
 * are cut to whole microseconds (what HEP3 keeps). Every 50th event has no Call-ID (a null key).
 */
export async function synthesizeEvents(n: number, tag = ''): Promise<CaptureEvent[]> {
  const base = await sampleEvents();
  const out: CaptureEvent[] = [];
  for (let r = 0; out.length < n; r++) {
    for (const e of base) {
      if (out.length >= n) break;
      const i = out.length;
      const ts = ((e.timestampNs + BigInt(r) * 60_000_000_000n) / 1000n) * 1000n;
      out.push({
        timestampNs: ts,
        ipFamily: e.ipFamily,
        ipProtocol: e.ipProtocol,
        transport: e.transport,
        srcIp: e.srcIp,
        dstIp: e.dstIp,
        srcPort: e.srcPort,
        dstPort: e.dstPort,
        vlan: e.vlan,
        protoType: e.protoType,
        captureId: e.captureId,
        nodeName: e.nodeName,
        correlationId: i % 50 === 49 ? '' : `${e.correlationId}~r${r}${tag}`,
        payload: e.payload,
        retransmission: false,
      });
    }
  }
  return out;
}

/** Per Call-ID, the ids in the order given (events without a Call-ID are not ordered by key). */
export function orderByCall(events: CaptureEvent[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const e of events) {
    if (!e.correlationId) continue;
    const list = m.get(e.correlationId);
    if (list) list.push(eventId(e));
    else m.set(e.correlationId, [eventId(e)]);
  }
  return m;
}

/**
 * A sink that behaves like the store will: idempotent by event id. Keeps the first delivery of each
 * id in arrival order, counts repeats, and can be made to fail.
 */
export class CollectingSink {
  readonly byId = new Map<string, CaptureEvent>();
  /** First deliveries, in the order they arrived. */
  readonly arrivals: CaptureEvent[] = [];
  deliveries = 0;
  duplicates = 0;
  calls = 0;
  failedCalls = 0;
  /** While set, every call throws (the store is down). */
  failing: string | null = null;
  /** Highest offset written, per partition (only successful calls). */
  readonly writtenOffsets = new Map<number, bigint>();

  readonly write = async (events: CaptureEvent[], context: ChunkContext): Promise<void> => {
    this.calls++;
    if (this.failing) {
      this.failedCalls++;
      throw new Error(this.failing);
    }
    for (const e of events) {
      this.deliveries++;
      const id = eventId(e);
      if (this.byId.has(id)) {
        this.duplicates++;
        continue;
      }
      this.byId.set(id, e);
      this.arrivals.push(e);
    }
    const last = BigInt(context.lastOffset);
    if ((this.writtenOffsets.get(context.partition) ?? -1n) < last) {
      this.writtenOffsets.set(context.partition, last);
    }
  };
}

/** Polls `cond` every 100 ms; throws with `what` after `timeoutMs`. */
export async function waitFor(cond: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A broker for one test file: the mock (owned, stopped in `stop`) or the real one from the environment. */
export interface KafkaTarget {
  brokers: string;
  /** Null against a real broker: outages cannot be staged there. */
  mock: MockKafka | null;
  /** Unique per run, so that runs against a shared real broker do not see each other's data. */
  name(base: string): string;
  createTopics(specs: { topic: string; partitions: number }[]): Promise<void>;
  stop(): Promise<void>;
}

/** Consumer timings the mock needs (CONTEXT.md: first join 3 s, rebalances session − 1 s). */
export const GROUP_TIMING = { sessionTimeout: 6000, heartbeatInterval: 500, maxWaitTimeInMs: 250 } as const;

export async function startKafkaTarget(
  options: { brokers?: number; real?: boolean } = {},
): Promise<KafkaTarget> {
  const run = `${process.pid}-${Date.now().toString(36)}`;
  const name = (base: string) => `${base}.${run}`;
  if (REAL_BROKERS && options.real !== false) {
    const brokers = REAL_BROKERS;
    return {
      brokers,
      mock: null,
      name,
      createTopics: async (specs) => {
        const kafka = createKafka({ brokers, logger: silentLogger, kafkaLogLevel: 'nothing' });
        await ensureTopics(kafka, specs, testLogger());
      },
      stop: async () => {},
    };
  }
  const mock = await startMockKafka({ brokers: options.brokers ?? 3 });
  return {
    brokers: mock.bootstrap,
    mock,
    name,
    createTopics: async (specs) => {
      for (const s of specs) await mock.createTopic(s.topic, s.partitions);
    },
    stop: () => mock.stop(),
  };
}
