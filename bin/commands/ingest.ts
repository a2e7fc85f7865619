/**
 * `callscope ingest`: the ingest service of split mode. Sources: a Kafka consumer group and/or a HEP3
 * listener; each is driven into a store sink of its own until SIGINT/SIGTERM.
 */
import { CallsJob } from '../../analyze/calls/job.js';
import { drive } from '../../core/drive.js';
import type { EventSource } from '../../core/source.js';
import { HepSource } from '../../ingest/hep/source.js';
import { createKafka } from '../../ingest/kafka/client.js';
import { DEFAULT_GROUP_ID } from '../../ingest/kafka/constants.js';
import { KafkaSource } from '../../ingest/kafka/source.js';
import { migrate } from '../../ingest/schema/migrate.js';
import { StoreSink } from '../../ingest/store-sink.js';
import { ALERT_FLAGS, ALERT_HELP, alertRulesOf, liveAlerts } from '../alerts.js';
import { type Command, parseCommand } from '../command.js';
import { UsageError } from '../config.js';
import { EXIT_OK } from '../errors.js';
import {
  COMMON,
  COMMON_HELP,
  databaseOf,
  EXIT_CODES_HELP,
  GROUP_HELP,
  KAFKA_FLAGS,
  KAFKA_HELP,
  LINK_FLAGS,
  LINK_HELP,
  linkOf,
  listenAddressOf,
  METRICS_FLAGS,
  METRICS_HELP,
  metricsListenOf,
  partitionsOf,
  STORE_FLAGS,
  STORE_HELP,
  statsIntervalOf,
  topicOf,
  ttlDaysOf,
} from '../flags.js';
import { provisionTopics } from '../kafka.js';
import { stopOnSignals } from '../live.js';
import { startMetrics } from '../metrics.js';
import { storeFor } from '../store.js';

export const ingestCommand: Command = {
  name: 'ingest',
  summary: 'ingest service (split mode): Kafka and/or HEP3 → store',
  help: `Usage: callscope ingest [--kafka BROKERS] [--hep-listen [HOST:]PORT] [store options]

Ingest service of split mode: a Kafka consumer group (offsets committed only once the store holds the
events) and/or a HEP3 listener on UDP and TCP (heplify, Kamailio siptrace, Asterisk res_hep,
FreeSWITCH, sngrep, \`callscope capture --hep-to\`) writing into the store until SIGINT/SIGTERM.
SIP arriving as payload only is parsed once here; HEP type-100 logs are stored with their
correlation id (hep_logs); events the store has no table for are counted and logged.

${KAFKA_HELP}${GROUP_HELP}  --session-timeout MS   consumer group session timeout (30000): a member silent that long is
                         replaced; a rebalance (a member joining or leaving) may wait that long
  --hep-listen [HOST:]PORT   accept HEP3 on UDP and TCP (e.g. 9060)
  --calls-job on|off     keep the calls table current (on): every 2 s, the calls with messages
                         stored since are computed again from the store. Safe on every consumer
                         (the results are the same); turn it off on all but one to save work.

${LINK_HELP}
${STORE_HELP}
${COMMON_HELP}
${METRICS_HELP}
${ALERT_HELP}
${EXIT_CODES_HELP}`,

  async run(argv) {
    const parsed = parseCommand(
      this,
      argv,
      {
        ...COMMON,
        ...STORE_FLAGS,
        ...KAFKA_FLAGS,
        ...LINK_FLAGS,
        ...METRICS_FLAGS,
        ...ALERT_FLAGS,
        group: { type: 'string' },
        'session-timeout': { type: 'string' },
        'hep-listen': { type: 'string' },
        'calls-job': { type: 'string' },
      },
      0,
      () => true,
    );
    if (parsed === null) return EXIT_OK;
    const { values, settings, logger } = parsed;
    const brokers = settings.string('kafka');
    const listen = settings.string('hep-listen');
    if (!brokers && !listen)
      throw new UsageError('ingest needs a source: --kafka BROKERS and/or --hep-listen PORT');
    const hepAddress = listen ? listenAddressOf(listen, '--hep-listen') : null;
    const metricsAt = metricsListenOf(settings);
    const alertRules = alertRulesOf(settings);
    const callsJobFlag = settings.string('calls-job', 'on');
    if (callsJobFlag !== 'on' && callsJobFlag !== 'off')
      throw new UsageError(`--calls-job must be on or off, got "${callsJobFlag}"`);
    const link = linkOf(settings);
    const partitions = partitionsOf(settings);
    const statsInterval = statsIntervalOf(settings);
    const database = databaseOf(settings);
    const ttlDays = ttlDaysOf(settings);
    const sessionTimeout = settings.number('session-timeout', 30_000);
    if (!Number.isInteger(sessionTimeout) || sessionTimeout < 1000)
      throw new UsageError('--session-timeout must be a whole number of ms, at least 1000');
    const metrics = await startMetrics(metricsAt, 'ingest', logger);
    const m = metrics?.metrics;
    const store = await storeFor(settings, logger).catch(async (error: unknown) => {
      await metrics?.close();
      throw error;
    });
    const stop = stopOnSignals(logger);
    let stopCalls: () => Promise<void> = async () => {};
    try {
      const { eventIds } = await migrate(store.client, { database, ttlDays, logger });
      const ready = {
        store: store.displayUrl,
        database,
        kafka: brokers ? topicOf(settings) : null,
        hep: null as null | { udp: number; tcp: number },
        metrics: metrics?.address ?? null,
      };
      const started: Promise<void>[] = [];
      const sources: EventSource<unknown>[] = [];
      if (brokers) {
        const kafka = createKafka({ brokers, logger, clientId: 'callscope-ingest' });
        // Every partition this member may be assigned is consumed at once: their chunks share one
        // flush (one INSERT) and one commit, so a fetch costs one store round trip, not one per partition.
        const topicPartitions = await provisionTopics(settings, logger, kafka);
        let onStart: () => void = () => {};
        started.push(new Promise((resolve) => (onStart = resolve)));
        const source = new KafkaSource({
          kafka,
          topic: topicOf(settings),
          groupId: settings.string('group', DEFAULT_GROUP_ID),
          logger,
          partitionsConsumedConcurrently: Math.max(partitions, topicPartitions),
          sessionTimeout,
          heartbeatInterval: Math.min(3000, Math.floor(sessionTimeout / 10)),
          onStart: () => onStart(),
        });
        m?.watchConsumer(source);
        sources.push(source);
      }
      if (hepAddress) {
        let onStart: () => void = () => {};
        started.push(new Promise((resolve) => (onStart = resolve)));
        sources.push(
          new HepSource({
            ...hepAddress,
            authKey: settings.string('hep-auth-key'),
            logger,
            onStart: (listener) => {
              m?.watchHepListener(listener);
              ready.hep = { udp: listener.udpPort, tcp: listener.tcpPort };
              onStart();
            },
          }),
        );
      }
      // A source that fails (Kafka unreachable, port in use) stops the others and ends the service.
      const all = new AbortController();
      stop.signal.addEventListener('abort', () => all.abort(), { once: true });
      const sinks = sources.map(
        () => new StoreSink(store.client, { database, logger, inserter: store.inserter, eventIds }),
      );
      m?.watchSinks(sinks);
      for (const sink of sinks) m?.watchStore(sink);
      // The calls table, recomputed from what the store holds (any consumer, any agent, any order).
      const callsWriter = new StoreSink(store.client, { database, logger, inserter: store.inserter });
      const callsJob =
        callsJobFlag === 'off'
          ? null
          : new CallsJob({
              client: store.client,
              database,
              writer: callsWriter,
              logger,
              link,
              onSettled: m?.countSettledCalls,
            });
      if (callsJob !== null) m?.watchCallsJob(callsJob);
      callsJob?.start();
      const alerts = await liveAlerts(
        alertRules,
        settings,
        store.client,
        database,
        ttlDays,
        logger,
        'ingest',
      );
      stopCalls = async () => {
        await alerts?.stop();
        await callsJob?.stop();
        await callsWriter.close();
        if (callsJob) logger.info('calls job stopped', { ...callsJob.stats() });
      };
      const runs = sources.map((source, i) =>
        drive(source, [sinks[i], ...(m ? [m.sink] : [])], {
          logger,
          signal: all.signal,
          statsIntervalMs: statsInterval,
        })
          .catch((error: unknown) => {
            all.abort();
            throw error;
          })
          .finally(() => sinks[i].close()),
      );
      const ended = Promise.allSettled(runs);
      const up = await Promise.race([Promise.all(started).then(() => true), ended.then(() => false)]);
      if (up)
        process.stdout.write(
          values.json
            ? `${JSON.stringify(ready)}\n`
            : `callscope ingest: ${JSON.stringify(ready)}; Ctrl-C stops\n`,
        );
      const settled = await ended;
      const failure = settled.find((r) => r.status === 'rejected');
      if (failure) throw failure.reason;
      const results = settled.map((r) => (r as PromiseFulfilledResult<Awaited<(typeof runs)[number]>>).value);
      logger.info('ingest stopped', {
        sources: sources.map((s) => s.name).join(','),
        stored: results.reduce((n, r) => n + (r.sinks.store?.delivered ?? 0), 0),
      });
      return EXIT_OK;
    } finally {
      stop.dispose();
      await stopCalls();
      await store.close();
      await metrics?.close();
    }
  },
};
