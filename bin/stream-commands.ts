/**
 * Split mode: `capture` (the agent on a monitoring VM) produces HEP3-encoded events to Kafka and/or
 * sends them as HEP to an existing HOMER; `ingest` consumes Kafka and/or listens for HEP from other
 * agents, and writes everything into the store. One code path with `run`: the same pipeline, writer
 * and store client.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type AnalyzeSummary, analyzeFile, analyzeInterface } from '../capture/analyze.js';
import type { CaptureEvent } from '../core/event.js';
import type { Logger } from '../core/log.js';
import { LiveQueue } from '../core/queue.js';
import { HepListener } from '../ingest/hep/listener.js';
import { HepSender, parseHepTarget } from '../ingest/hep/sender.js';
import { createKafka } from '../ingest/kafka/client.js';
import { DEFAULT_GROUP_ID, DEFAULT_TOPIC, deadLetterTopic } from '../ingest/kafka/constants.js';
import { EventConsumer } from '../ingest/kafka/consumer.js';
import { EventProducer } from '../ingest/kafka/producer.js';
import { ensureTopics } from '../ingest/kafka/topics.js';
import { migrate } from '../ingest/schema/migrate.js';
import { StoreSink } from '../ingest/store-sink.js';
import {
  COMMON,
  captureIdOf,
  EXIT_OK,
  loggerFor,
  MEDIA_FLAGS,
  pipelineOptionsOf,
  progressFor,
} from './common.js';
import { Settings, UsageError } from './config.js';
import {
  checkLiveSource,
  databaseOf,
  LIVE_OPTIONS,
  liveErrorExit,
  liveOptionsOf,
  liveProgressFor,
  STORE_OPTIONS,
  sourceOf,
  stopOnSignals,
  storeFor,
  ttlDaysOf,
} from './store-commands.js';
import { VM_FLAGS, vmReport, vmSourceFor } from './vms.js';

const KAFKA_OPTIONS = {
  kafka: { type: 'string' },
  topic: { type: 'string' },
  partitions: { type: 'string' },
} as const;

const HEP_OPTIONS = {
  'hep-auth-key': { type: 'string' },
} as const;

export const STREAM_HELP = `Split-mode options (capture, ingest):
  --kafka BROKERS        host:port[,host:port...]                        env CALLSCOPE_KAFKA
  --topic NAME           events topic (${DEFAULT_TOPIC}); dead letters go to NAME.dlq
  --partitions N         partitions when creating the topic (6)
  --spool-dir DIR        capture: where events wait while Kafka is down (./callscope-spool)
  --hep-to udp|tcp:HOST:PORT   capture: also send HEP3 to an existing HOMER / heplify-server
  --hep-listen [HOST:]PORT     ingest: accept HEP3 on UDP and TCP (e.g. 9060)
  --hep-auth-key KEY     HEP auth key sent (capture) or required (ingest)   env CALLSCOPE_HEP_AUTH_KEY
  --group NAME           ingest: consumer group (${DEFAULT_GROUP_ID})
`;

function topicOf(settings: Settings): string {
  return settings.string('topic', DEFAULT_TOPIC);
}

function waitForSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (signal: string) => () => resolve(signal);
    process.once('SIGINT', on('SIGINT'));
    process.once('SIGTERM', on('SIGTERM'));
  });
}

async function provisionTopics(settings: Settings, logger: Logger, kafka: ReturnType<typeof createKafka>) {
  const partitions = settings.number('partitions', 6);
  if (!Number.isInteger(partitions) || partitions < 1)
    throw new UsageError('--partitions must be a positive integer');
  const topic = topicOf(settings);
  await ensureTopics(
    kafka,
    [
      { topic, partitions },
      { topic: deadLetterTopic(topic), partitions: 1 },
    ],
    logger,
  );
}

export async function captureCommand(argv: string[], help: string): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...COMMON,
      ...KAFKA_OPTIONS,
      ...HEP_OPTIONS,
      pcap: { type: 'string' },
      'spool-dir': { type: 'string' },
      'hep-to': { type: 'string' },
      ...LIVE_OPTIONS,
      ...MEDIA_FLAGS,
      ...VM_FLAGS,
    },
  });
  if (values.help) {
    process.stdout.write(help);
    return EXIT_OK;
  }
  if (positionals.length > 0)
    throw new UsageError('capture takes no positional arguments (use --pcap FILE or --interface IFACE)');
  const settings = new Settings(values);
  const source = sourceOf(settings, 'capture');
  const brokers = settings.string('kafka');
  const hepTo = settings.string('hep-to');
  if (!brokers && !hepTo)
    throw new UsageError('capture needs somewhere to send: --kafka BROKERS and/or --hep-to TARGET');
  const live = source.interface !== undefined ? liveOptionsOf(settings, values) : null;
  const logger = loggerFor(settings);
  if (source.interface !== undefined) {
    try {
      checkLiveSource(source.interface);
    } catch (error) {
      const code = liveErrorExit(error);
      if (code !== null) return code;
      throw error;
    }
  }
  const captureId = captureIdOf(settings);
  if (hepTo) {
    try {
      parseHepTarget(hepTo);
    } catch (e) {
      throw new UsageError(`--hep-to: ${(e as Error).message}`);
    }
  }
  // VM ids travel with each event (HEP vendor chunks); the inventory table is written by `run` only.
  const vms = await vmSourceFor(settings, logger);
  const pipeline = pipelineOptionsOf(settings, logger, vms);
  let producer: EventProducer | null = null;
  let hep: HepSender | null = null;
  try {
    if (brokers) {
      const kafka = createKafka({ brokers, logger, clientId: 'callscope-capture' });
      await provisionTopics(settings, logger, kafka).catch((e: Error) =>
        // Brokers down at start: the producer spools and provisioning is the ingest side's job too.
        logger.warn('topics not provisioned', { error: e.message }),
      );
      producer = new EventProducer({
        kafka,
        topic: topicOf(settings),
        spool: { dir: settings.string('spool-dir', join('.', 'callscope-spool')) },
        logger,
      });
      await producer.connect();
    }
    hep = hepTo
      ? new HepSender({ target: hepTo, authKey: settings.string('hep-auth-key'), captureId, logger })
      : null;
  } catch (error) {
    // Nothing opened so far may keep the process alive.
    await producer?.close().catch(() => {});
    await vms?.close();
    throw error;
  }
  const send = async (events: CaptureEvent[]): Promise<void> => {
    for (const e of events) {
      hep?.send(e);
      if (producer) await producer.send(e);
    }
  };
  if (source.interface !== undefined && live !== null) {
    // Live: events wait in a bounded queue (an interface cannot be paused) until the signal.
    const iface = source.interface;
    const progress = liveProgressFor('capture', values);
    const stop = stopOnSignals(logger);
    const queue = new LiveQueue<CaptureEvent>(send, {
      maxItems: live.maxQueuedEvents,
      logger,
      sink: producer ? 'kafka' : 'hep',
    });
    try {
      const summary = await analyzeInterface(iface, {
        ...pipeline,
        capture: live.capture,
        durationSec: live.durationSec,
        signal: stop.signal,
        onEvent: (e) => queue.push(e),
        onProgress: (totals, elapsed) => progress.update(totals, elapsed),
      });
      await queue.drain();
      progress.done();
      if (producer) await producer.flush();
      if (hep) await hep.flush();
      const out = {
        ...captureFacts(iface, summary, producer, hep),
        capture: summary.capture,
        droppedEvents: queue.dropped,
        vms: vmReport(vms),
      };
      process.stdout.write(
        values.json
          ? `${JSON.stringify(out, null, 2)}\n`
          : `${describeCapture(out)}${queue.dropped > 0 ? `; ${queue.dropped} events DROPPED (sink too slow)` : ''}\n`,
      );
      return EXIT_OK;
    } catch (error) {
      const code = liveErrorExit(error);
      if (code !== null) return code;
      throw error;
    } finally {
      stop.dispose();
      progress.done();
      await producer?.close();
      await hep?.close();
      await vms?.close();
    }
  }
  const pcap = source.pcap as string;
  const progress = progressFor('capture', values);
  let queue: CaptureEvent[] = [];
  const hand = async (): Promise<void> => {
    const events = queue;
    queue = [];
    await send(events);
  };
  try {
    const summary = await analyzeFile(pcap, {
      ...pipeline,
      onEvent: (e) => {
        queue.push(e);
      },
      pause: () => (queue.length === 0 ? null : hand()),
      onProgress: (done, total, packets) => progress.update(done, total, packets),
    });
    await hand();
    progress.done();
    if (producer) await producer.flush();
    if (hep) await hep.flush();
    const out = { ...captureFacts(pcap, summary, producer, hep), vms: vmReport(vms) };
    process.stdout.write(values.json ? `${JSON.stringify(out, null, 2)}\n` : `${describeCapture(out)}\n`);
    return EXIT_OK;
  } finally {
    progress.done();
    await producer?.close();
    await hep?.close();
    await vms?.close();
  }
}

function captureFacts(
  file: string,
  summary: AnalyzeSummary,
  producer: EventProducer | null,
  hep: HepSender | null,
) {
  return {
    file,
    packets: summary.packets,
    sipMessages: summary.sip.messages,
    rtpStreams: summary.rtp.streams.length,
    kafka: producer ? producer.stats() : null,
    hep: hep ? { ...hep.stats } : null,
  };
}

function describeCapture(o: {
  file: string;
  packets: number;
  sipMessages: number;
  rtpStreams: number;
  kafka: ReturnType<EventProducer['stats']> | null;
  hep: HepSender['stats'] | null;
}): string {
  const parts = [
    `${o.file}: ${o.packets} packets, ${o.sipMessages} SIP messages, ${o.rtpStreams} RTP streams`,
  ];
  if (o.kafka)
    parts.push(`kafka: ${o.kafka.sent} sent, ${o.kafka.spooled} spooled (${o.kafka.spoolSize} waiting)`);
  if (o.hep) parts.push(`hep: ${o.hep.sent} sent, ${o.hep.dropped} dropped`);
  return parts.join('; ');
}

/** HEP has no offsets: the sink's chunk context only labels where events came from. */
const HEP_CHUNK = { topic: 'hep', partition: 0, firstOffset: '0', lastOffset: '0' };

function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:(.*):)?(\d+)$/.exec(text);
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m || port > 65535) throw new UsageError(`--hep-listen expects [HOST:]PORT, got "${text}"`);
  return { host: m[1]?.replace(/^\[|\]$/g, '') || '0.0.0.0', port };
}

export async function ingestCommand(argv: string[], help: string): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...COMMON,
      ...STORE_OPTIONS,
      ...KAFKA_OPTIONS,
      ...HEP_OPTIONS,
      group: { type: 'string' },
      'hep-listen': { type: 'string' },
    },
  });
  if (values.help) {
    process.stdout.write(help);
    return EXIT_OK;
  }
  if (positionals.length > 0) throw new UsageError('ingest takes no positional arguments');
  const settings = new Settings(values);
  const brokers = settings.string('kafka');
  const listen = settings.string('hep-listen');
  if (!brokers && !listen)
    throw new UsageError('ingest needs a source: --kafka BROKERS and/or --hep-listen PORT');
  const logger = loggerFor(settings);
  const store = await storeFor(settings, logger);
  const database = databaseOf(settings);
  let consumer: EventConsumer | null = null;
  let listener: HepListener | null = null;
  const sinks: StoreSink[] = [];
  try {
    await migrate(store.client, { database, ttlDays: ttlDaysOf(settings), logger });

    if (brokers) {
      const kafka = createKafka({ brokers, logger, clientId: 'callscope-ingest' });
      await provisionTopics(settings, logger, kafka);
      // Offsets are committed only once the rows are in the store; after a store outage longer than
      // the writer's retries the sink starts a new writer and the consumer offers the chunk again.
      const sink = new StoreSink(store.client, { database, logger });
      sinks.push(sink);
      consumer = new EventConsumer({
        kafka,
        topic: topicOf(settings),
        groupId: settings.string('group', DEFAULT_GROUP_ID),
        logger,
        // Partitions in parallel, their chunks sharing one INSERT (StoreSink coalesces the flushes).
        partitionsConsumedConcurrently: settings.number('partitions', 6),
        sink: sink.write,
      });
      await consumer.start();
    }
    if (listen) {
      const { host, port } = parseListen(listen);
      const sink = new StoreSink(store.client, { database, logger }, { flushEachChunk: false });
      sinks.push(sink);
      listener = await HepListener.start({
        host,
        port,
        authKey: settings.string('hep-auth-key'),
        logger,
        onEvents: (events) => sink.write(events, HEP_CHUNK),
      });
    }
    const ready = {
      store: store.displayUrl,
      database,
      kafka: brokers ? topicOf(settings) : null,
      hep: listener ? { udp: listener.udpPort, tcp: listener.tcpPort } : null,
    };
    process.stdout.write(
      values.json
        ? `${JSON.stringify(ready)}\n`
        : `callscope ingest: ${JSON.stringify(ready)}; Ctrl-C stops\n`,
    );
    const signal = await waitForSignal();
    logger.info('stopping', { signal });
    return EXIT_OK;
  } finally {
    // Stop the sources first so that what they handed over is written, then the writer, then the store.
    await consumer?.stop();
    await listener?.close();
    for (const sink of sinks)
      await sink.close().catch((e: Error) => logger.error('store writer close failed', { error: e.message }));
    await store.close();
  }
}
