/**
 * `callscope capture`: the capture agent of split mode. The source is a file or a live interface; the
 * sinks are Kafka (HEP3-encoded, keyed by Call-ID, spooled on disk while the brokers are down) and/or
 * HEP to an existing HOMER, and the summary.
 */
import { join } from 'node:path';
import { CaptureSummary } from '../../analyze/summary.js';
import type { RtpSpool } from '../../capture/rtp-spool.js';
import { drive } from '../../core/drive.js';
import type { EventSink } from '../../core/sink.js';
import { parseHepTarget } from '../../ingest/hep/sender.js';
import { HepSink } from '../../ingest/hep/sink.js';
import { createKafka } from '../../ingest/kafka/client.js';
import { KafkaSink } from '../../ingest/kafka/sink.js';
import { captureInputFor } from '../capture-source.js';
import { type Command, parseCommand } from '../command.js';
import { UsageError } from '../config.js';
import { cutShortExit, EXIT_OK } from '../errors.js';
import {
  COMMON,
  COMMON_HELP,
  captureIdOf,
  captureOptionsOf,
  EXIT_CODES_HELP,
  KAFKA_FLAGS,
  KAFKA_HELP,
  LIVE_FLAGS,
  LIVE_HELP,
  MEDIA_FLAGS,
  MEDIA_HELP,
  METRICS_FLAGS,
  METRICS_HELP,
  metricsListenOf,
  partitionsOf,
  RTP_SPOOL_FLAGS,
  RTP_SPOOL_HELP,
  rtpSpoolOf,
  statsIntervalOf,
  topicOf,
} from '../flags.js';
import { provisionTopics } from '../kafka.js';
import { startMetrics } from '../metrics.js';
import { VM_FLAGS, VM_HELP, vmReport, vmSourceFor } from '../vms.js';

export const captureCommand: Command = {
  name: 'capture',
  summary: 'capture agent (split mode): decode and send every event to Kafka and/or HEP',
  help: `Usage: callscope capture --pcap FILE | --interface IFACE [--kafka BROKERS] [--hep-to udp|tcp:HOST:PORT] [--json]

Capture agent of split mode: decode the file (or capture live until SIGINT/SIGTERM or --duration) and
send every event HEP3-encoded to Kafka (keyed by Call-ID; spooled on disk while the brokers are down)
and/or as HEP to an existing HOMER, heplify-server or sngrep. \`callscope ingest\` writes them into the
store. VM ids (--ovs-db, --vm-map) travel with each event.

${LIVE_HELP}
${KAFKA_HELP}  --spool-dir DIR        where events wait while Kafka is down (./callscope-spool)
  --hep-to udp|tcp:HOST:PORT   also send HEP3 to an existing HOMER / heplify-server

${COMMON_HELP}
${MEDIA_HELP}
${RTP_SPOOL_HELP}${VM_HELP}
${METRICS_HELP}
${EXIT_CODES_HELP}`,

  async run(argv) {
    const parsed = parseCommand(
      this,
      argv,
      {
        ...COMMON,
        ...KAFKA_FLAGS,
        ...LIVE_FLAGS,
        ...MEDIA_FLAGS,
        ...RTP_SPOOL_FLAGS,
        ...VM_FLAGS,
        ...METRICS_FLAGS,
        'spool-dir': { type: 'string' },
        'hep-to': { type: 'string' },
      },
      0,
      (s) => s.string('interface') !== undefined,
    );
    if (parsed === null) return EXIT_OK;
    const { values, settings, logger } = parsed;
    const brokers = settings.string('kafka');
    const hepTo = settings.string('hep-to');
    if (!brokers && !hepTo)
      throw new UsageError('capture needs somewhere to send: --kafka BROKERS and/or --hep-to TARGET');
    if (hepTo) {
      try {
        parseHepTarget(hepTo);
      } catch (e) {
        throw new UsageError(`--hep-to: ${(e as Error).message}`);
      }
    }
    partitionsOf(settings);
    const metricsAt = metricsListenOf(settings);
    const input = captureInputFor('capture', settings, values, logger);
    const sinks: EventSink[] = [];
    let spool: RtpSpool | null = null;
    let metrics: Awaited<ReturnType<typeof startMetrics>> = null;
    try {
      metrics = await startMetrics(metricsAt, 'capture', logger);
      const vms = await vmSourceFor(settings, logger);
      try {
        let kafka: KafkaSink | null = null;
        if (brokers) {
          const client = createKafka({ brokers, logger, clientId: 'callscope-capture' });
          // Brokers down at start: the producer spools, and provisioning is the ingest side's job too.
          await provisionTopics(settings, logger, client).catch((e: Error) =>
            logger.warn('topics not provisioned', { error: e.message }),
          );
          kafka = new KafkaSink({
            kafka: client,
            topic: topicOf(settings),
            spool: { dir: settings.string('spool-dir', join('.', 'callscope-spool')) },
            logger,
          });
          sinks.push(kafka);
          await kafka.connect();
        }
        const hep = hepTo
          ? new HepSink({
              target: hepTo,
              authKey: settings.string('hep-auth-key'),
              captureId: captureIdOf(settings),
              logger,
            })
          : null;
        if (hep) sinks.push(hep);
        const summary = new CaptureSummary({ logger });
        spool = rtpSpoolOf(settings, logger);
        const source = input.source(captureOptionsOf(settings, logger, vms, spool));
        const m = metrics?.metrics;
        m?.watchCapture(source);
        m?.watchSinks(sinks);
        if (kafka) m?.watchProducer(kafka.producer);
        const result = await drive(source, [...sinks, ...summary.sinks, ...(m ? [m.sink] : [])], {
          logger,
          signal: input.signal,
          maxQueuedEvents: input.maxQueuedEvents,
          statsIntervalMs: input.live ? statsIntervalOf(settings) : 0,
          onLiveQueue: m ? (queue) => m.watchLiveQueue(queue) : undefined,
        });
        input.done();
        for (const sink of sinks) await sink.close();
        spool?.close();
        const s = await summary.of(result.source);
        const out = {
          [input.live ? 'interface' : 'file']: input.name,
          packets: s.packets,
          sipMessages: s.sip.messages,
          rtpStreams: s.rtp.streams.length,
          kafka: kafka ? kafka.producer.stats() : null,
          hep: hep ? { ...hep.sender.stats } : null,
          sinks: result.sinks,
          droppedEvents: result.droppedEvents,
          // docs/BACKPRESSURE.md: events the capture produced, the live queue's bound, high-water mark and
          // drops by reason, how long a file read waited for the sinks, each sink's most pending events.
          backpressure: {
            events: result.events,
            queue: result.queue,
            waitedForSinksMs: result.sinksWaitedMs,
            pendingPeak: result.pendingPeak,
            refused: result.refused,
          },
          capture: s.capture,
          rtpSpool: spool?.stats() ?? null,
          vms: vmReport(vms),
          metrics: metrics?.address ?? null,
        };
        if (values.json) process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
        else {
          const parts = [
            `${input.name}: ${s.packets} packets, ${s.sip.messages} SIP messages, ${s.rtp.streams.length} RTP streams`,
          ];
          if (out.kafka)
            parts.push(
              `kafka: ${out.kafka.sent} sent, ${out.kafka.spooled} spooled (${out.kafka.spoolSize} waiting)`,
            );
          if (out.hep) parts.push(`hep: ${out.hep.sent} sent, ${out.hep.dropped} dropped`);
          if (result.droppedEvents > 0)
            parts.push(
              `${result.droppedEvents} events DROPPED (${Object.entries(result.queue?.dropped ?? {})
                .map(([why, n]) => `${n} ${why}`)
                .join(', ')}; queue bound ${result.queue?.maxItems})`,
            );
          process.stdout.write(`${parts.join('; ')}\n`);
        }
        return input.live ? EXIT_OK : cutShortExit(input.name, s);
      } finally {
        for (const sink of sinks) await sink.close().catch(() => undefined);
        spool?.close();
        await vms?.close();
      }
    } finally {
      input.done();
      await metrics?.close();
    }
  },
};
