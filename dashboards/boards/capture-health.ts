/**
 * Capture health: is the capture seeing everything, and is the store keeping up? Kernel, interface
 * and overload drops per capture interface, packets received, capture runs' decoding errors, ingest
 * lag (capture time to store time), the store's insert rate and the rows it quarantined.
 */
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import { table, timeseries } from '../panels.js';
import { nodeVariable } from '../variables.js';
import { dashboard, UIDS } from './common.js';

const NODE = `$__conditionalAll(node IN (\${node}), $node)`;

export function captureHealth(): Dashboard {
  return dashboard(
    UIDS.health,
    'Capture health',
    'Drops, packets received, decoding errors, ingest lag, store insert rate and quarantined rows.',
  )
    .withVariable(nodeVariable())
    .withPanel(
      timeseries(
        'Drops per interface (kernel, interface, overload)',
        `SELECT $__timeInterval(time) AS t, concat(node, ' ', interface) AS capture,
           sum(dropped_kernel_delta) AS kernel, sum(dropped_overload_delta) AS overload
         FROM capture_health WHERE $__timeFilter(time) AND ${NODE}
         GROUP BY t, capture ORDER BY t`,
        { steps: ['green', [1, 'red']] },
      ),
    )
    .withPanel(
      timeseries(
        'Packets received per interface',
        `SELECT $__timeInterval(time) AS t, concat(node, ' ', interface) AS capture, sum(packets_delta) / $__interval_s AS pps
         FROM capture_health WHERE $__timeFilter(time) AND ${NODE}
         GROUP BY t, capture ORDER BY t`,
        { unit: 'pps' },
      ),
    )
    .withPanel(
      timeseries(
        'Ingest lag (capture time to stored), p50 / p99',
        `SELECT $__timeInterval(stored_at) AS t,
           quantile(0.5)(toUnixTimestamp(stored_at) - toUnixTimestamp(time)) AS p50,
           quantile(0.99)(toUnixTimestamp(stored_at) - toUnixTimestamp(time)) AS p99
         FROM sip_messages WHERE $__timeFilter(stored_at) AND ${NODE}
         GROUP BY t ORDER BY t`,
        {
          unit: 's',
          description: 'A replayed capture file shows its age here: the lag is meaningful for live capture.',
        },
      ),
    )
    .withPanel(
      timeseries(
        'Store insert rate (rows/s)',
        `SELECT t, table, sum(n) / $__interval_s AS rows_per_second FROM (
           SELECT $__timeInterval(stored_at) AS t, 'sip_messages' AS table, count() AS n
           FROM sip_messages WHERE $__timeFilter(stored_at) AND ${NODE} GROUP BY t
           UNION ALL
           SELECT $__timeInterval(stored_at) AS t, 'media_reports' AS table, count() AS n
           FROM media_reports WHERE $__timeFilter(stored_at) AND ${NODE} GROUP BY t)
         GROUP BY t, table ORDER BY t`,
        { unit: 'rowsps' },
      ),
    )
    .withPanel(
      timeseries(
        'Quarantined rows (dead letters) by reason',
        `SELECT $__timeInterval(quarantined_at) AS t, concat(target_table, ': ', error_code) AS reason, count() AS rows
         FROM quarantine WHERE $__timeFilter(quarantined_at) GROUP BY t, reason ORDER BY t`,
        { steps: ['green', [1, 'red']] },
      ),
    )
    .withPanel(
      table(
        'Capture runs',
        `SELECT updated_at, run_id, node, source, format, packets, malformed_packets, truncated_packets, sip_malformed,
           call_ids_capped, streams_omitted, duration_sec, elapsed_ms, packets_per_second
         FROM capture_runs FINAL WHERE $__timeFilter(updated_at) AND ${NODE} ORDER BY updated_at DESC LIMIT 100`,
        { size: { w: 24, h: 8 } },
      ),
    )
    .build();
}
