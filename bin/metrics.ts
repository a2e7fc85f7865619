/** What `run`, `capture` and `ingest` share for --metrics-listen: a registry of their own, served. */
import type { Logger } from '../core/log.js';
import type { CallscopeMetrics } from '../ingest/metrics/metrics.js';
import type { MetricsServer } from '../ingest/metrics/server.js';

export interface CommandMetrics {
  metrics: CallscopeMetrics;
  /** `host:port` listened on (the real port when 0 was asked for). */
  address: string;
  url: string;
  /** Stops serving and forgets the metrics. */
  close(): Promise<void>;
}

/**
 * Starts serving the command's metrics at `listen` (from metricsListenOf), or null without it. Logs
 * where, at info (a service's default level), so that a port picked by the system can be found.
 */
export async function startMetrics(
  listen: { host: string; port: number } | null,
  command: string,
  logger: Logger,
): Promise<CommandMetrics | null> {
  if (listen === null) return null;
  // Loaded only when asked for: prom-client costs every command ~50 ms of start-up otherwise.
  const [{ CallscopeMetrics }, { MetricsServer }] = await Promise.all([
    import('../ingest/metrics/metrics.js'),
    import('../ingest/metrics/server.js'),
  ]);
  const metrics = new CallscopeMetrics({ command });
  let server: MetricsServer;
  try {
    server = await MetricsServer.start({ ...listen, registry: metrics.registry, logger });
  } catch (error) {
    metrics.close();
    throw error;
  }
  logger.info('metrics listening', { address: server.address, url: server.url });
  return {
    metrics,
    address: server.address,
    url: server.url,
    close: async () => {
      await server.close();
      metrics.close();
    },
  };
}
