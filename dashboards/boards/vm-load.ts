/** Per-VM load: calls per second and concurrent calls, registrations, INVITEs each way, RTP streams and bitrate. */
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import { table, timeseries } from '../panels.js';
import { CALL_VM_SCOPE, EVENT_SCOPE, nodeVariable, vmVariable } from '../variables.js';
import { dashboard, UIDS, withEventAnnotations } from './common.js';

/** Each leg once per VM it has a side on. */
const LEGS_BY_VM = `SELECT *, arrayJoin(arrayDistinct(arrayFilter(v -> v != '', [caller_vm, callee_vm]))) AS vm
  FROM calls FINAL`;

export function vmLoad(): Dashboard {
  return withEventAnnotations(
    dashboard(UIDS.vmLoad, 'Per-VM load', 'What each VM carries: calls, registrations, INVITEs, RTP.'),
  )
    .withVariable(vmVariable())
    .withVariable(nodeVariable())
    .withPanel(
      timeseries(
        'Calls per second per VM (legs started)',
        `SELECT $__timeInterval_ms(start) AS time, vm, count() / $__interval_s AS cps
         FROM (${LEGS_BY_VM} WHERE $__timeFilter_ms(start) AND ${CALL_VM_SCOPE})
         GROUP BY time, vm ORDER BY time`,
        { unit: 'cps' },
      ),
    )
    .withPanel(
      timeseries(
        'Concurrent answered calls per VM',
        `SELECT t AS time, vm, count() AS calls FROM (
           SELECT vm, arrayJoin(arrayMap(i -> toDateTime((intDiv(toUnixTimestamp(assumeNotNull(answer)), $__interval_s) + i) * $__interval_s),
             range(toUInt64(least(2000, greatest(0, intDiv(toUnixTimestamp(\`end\`), $__interval_s)
               - intDiv(toUnixTimestamp(assumeNotNull(answer)), $__interval_s)) + 1))))) AS t
           FROM (${LEGS_BY_VM} WHERE start >= $__fromTime - INTERVAL 1 DAY AND start <= $__toTime AND answer IS NOT NULL
             AND ${CALL_VM_SCOPE}))
         WHERE t >= $__fromTime AND t <= $__toTime GROUP BY t, vm ORDER BY t`,
      ),
    )
    .withPanel(
      timeseries(
        'REGISTER requests per VM (sent)',
        `SELECT $__timeInterval(time) AS t, src_vm AS vm, count() / $__interval_s AS per_second
         FROM sip_messages WHERE $__timeFilter(time) AND method = 'REGISTER' AND NOT retransmission
           AND src_vm != '' AND ${EVENT_SCOPE}
         GROUP BY t, vm ORDER BY t`,
        { unit: 'reqps' },
      ),
    )
    .withPanel(
      table(
        'INVITEs sent and received per VM (new calls, no retransmissions)',
        `SELECT vm, countIf(dir = 'sent') AS sent, countIf(dir = 'received') AS received FROM (
           SELECT arrayJoin([(src_vm, 'sent'), (dst_vm, 'received')]) AS side, tupleElement(side, 1) AS vm,
             tupleElement(side, 2) AS dir
           FROM sip_messages WHERE $__timeFilter(time) AND method = 'INVITE' AND to_tag = '' AND NOT retransmission
             AND ${EVENT_SCOPE})
         WHERE vm != '' GROUP BY vm ORDER BY sent + received DESC LIMIT 200`,
      ),
    )
    .withPanel(
      timeseries(
        'RTP streams active per VM (interval reports)',
        `SELECT $__timeInterval(time) AS t, vm, uniqExact(src_ip, src_port, dst_ip, dst_port, ssrc) AS streams
         FROM (SELECT time, src_ip, src_port, dst_ip, dst_port, ssrc,
                 arrayJoin(arrayDistinct(arrayFilter(v -> v != '', [src_vm, dst_vm]))) AS vm
               FROM media_reports WHERE $__timeFilter(time) AND kind = 'interval' AND ${EVENT_SCOPE})
         GROUP BY t, vm ORDER BY t`,
      ),
    )
    .withPanel(
      timeseries(
        'RTP bitrate sent per VM',
        `SELECT $__timeInterval(time) AS t, src_vm AS vm, sum(bitrate_kbps) * 1000 / greatest(1, uniqExact(time)) AS bps
         FROM media_reports WHERE $__timeFilter(time) AND kind = 'interval' AND src_vm != '' AND ${EVENT_SCOPE}
         GROUP BY t, vm ORDER BY t`,
        {
          unit: 'bps',
          description:
            'Sum of the streams\u2019 bitrates per interval report time, averaged over the bucket.',
        },
      ),
    )
    .build();
}
