/** Media quality: the worst streams, and jitter, loss and MOS distributions per VM; loss bursts and delay. */
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import { bars, table, timeseries } from '../panels.js';
import { EVENT_SCOPE, nodeVariable, vmVariable } from '../variables.js';
import { CALL_DETAIL_LINK, dashboard, UIDS } from './common.js';

/** Final reports (one per stream) in range, each event once. */
const FINAL_STREAMS = `SELECT * FROM media_reports
  WHERE $__timeFilter(time) AND kind = 'final' AND ${EVENT_SCOPE} LIMIT 1 BY event_id`;

/** Each stream once per VM it touches (either end). */
const BY_VM = `SELECT arrayJoin(arrayDistinct(arrayFilter(v -> v != '', [src_vm, dst_vm]))) AS vm, * FROM (${FINAL_STREAMS})`;

export function mediaQuality(): Dashboard {
  return dashboard(
    UIDS.media,
    'Media quality',
    'RTP streams: the worst ones, jitter/loss/MOS distributions per VM, loss bursts and late packets.',
  )
    .withVariable(vmVariable())
    .withVariable(nodeVariable())
    .withPanel(
      table(
        'Worst streams (lowest MOS)',
        `SELECT time, call_id, src_ip, src_port, dst_ip, dst_port, src_vm, dst_vm, codec, packets, lost,
           loss_percent, mean_jitter_ms, max_jitter_ms, mos, min_mos
         FROM (${FINAL_STREAMS}) WHERE mos IS NOT NULL ORDER BY mos ASC, loss_percent DESC LIMIT 25`,
        { size: { w: 24, h: 9 }, links: [CALL_DETAIL_LINK], steps: ['red', [3.1, 'orange'], [3.6, 'green']] },
      ),
    )
    .withPanel(
      table(
        'MOS per VM (streams, p5 / p50, share under 3.6)',
        `SELECT vm, count() AS streams, round(quantileExact(0.05)(assumeNotNull(mos)), 2) AS mos_p5,
           round(quantileExact(0.5)(assumeNotNull(mos)), 2) AS mos_p50,
           round(countIf(mos < 3.6) / count(), 4) AS under_3_6
         FROM (${BY_VM}) WHERE mos IS NOT NULL GROUP BY vm ORDER BY mos_p5 ASC LIMIT 200`,
        { size: { w: 8, h: 8 } },
      ),
    )
    .withPanel(
      table(
        'Jitter per VM (mean jitter of streams, ms)',
        `SELECT vm, count() AS streams, round(quantileExact(0.5)(mean_jitter_ms), 2) AS p50,
           round(quantileExact(0.95)(mean_jitter_ms), 2) AS p95, round(max(max_jitter_ms), 2) AS max
         FROM (${BY_VM}) GROUP BY vm ORDER BY p95 DESC LIMIT 200`,
        { size: { w: 8, h: 8 } },
      ),
    )
    .withPanel(
      table(
        'Loss per VM (% of expected packets)',
        `SELECT vm, count() AS streams, round(quantileExact(0.5)(loss_percent), 3) AS p50,
           round(quantileExact(0.95)(loss_percent), 3) AS p95, sum(lost) AS lost, sum(packets) AS packets
         FROM (${BY_VM}) GROUP BY vm ORDER BY p95 DESC LIMIT 200`,
        { size: { w: 8, h: 8 } },
      ),
    )
    .withPanel(
      timeseries(
        'MOS p5 per VM, by interval report',
        `SELECT $__timeInterval(time) AS t, vm, quantile(0.05)(interval_mos) AS mos_p5
         FROM (SELECT time, interval_mos, arrayJoin(arrayDistinct(arrayFilter(v -> v != '', [src_vm, dst_vm]))) AS vm
               FROM media_reports WHERE $__timeFilter(time) AND kind = 'interval' AND has_interval AND ${EVENT_SCOPE})
         GROUP BY t, vm ORDER BY t`,
        { size: { w: 12, h: 8 } },
      ),
    )
    .withPanel(
      bars(
        'Loss bursts (runs of consecutive lost packets)',
        `SELECT if(i = 10, '10+', toString(i)) AS run_length, sum(loss_bursts[i]) AS bursts
         FROM (${FINAL_STREAMS}) ARRAY JOIN arrayEnumerate(loss_bursts) AS i
         GROUP BY i ORDER BY i`,
        { size: { w: 6, h: 8 } },
      ),
    )
    .withPanel(
      bars(
        'Late packets (share later than N ms, mean of streams)',
        `SELECT concat('> ', k, ' ms') AS late, round(avg(delay_over[k]), 4) AS share
         FROM (${FINAL_STREAMS}) ARRAY JOIN mapKeys(delay_over) AS k
         GROUP BY k ORDER BY toUInt32OrZero(k)`,
        { size: { w: 6, h: 8 }, unit: 'percentunit' },
      ),
    )
    .build();
}
