/**
 * Peers and registrations: OPTIONS keepalives per peer (the dispatcher's probes: is a PBX answering?),
 * REGISTER outcomes and the registration request delay (RRD, RFC 6076: request to final answer, per
 * transaction).
 */
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import { table, timeseries } from '../panels.js';
import { EVENT_SCOPE, nodeVariable, vmVariable } from '../variables.js';
import { dashboard, UIDS } from './common.js';

/** Per transaction of a method: its first request, its final answer (≥ 200) and that answer's status. */
function transactions(method: string): string {
  return `SELECT call_id, cseq_num, any(if(is_request, dst_ip, src_ip)) AS peer, any(if(is_request, dst_vm, src_vm)) AS peer_vm,
      minIf(time, is_request) AS sent, minIf(time, NOT is_request AND status >= 200) AS answered_at,
      argMinIf(status, time, NOT is_request AND status >= 200) AS final_status,
      countIf(NOT is_request AND status >= 200) > 0 AS answered
    FROM sip_messages WHERE $__timeFilter(time) AND cseq_method = '${method}' AND ${EVENT_SCOPE}
    GROUP BY call_id, cseq_num HAVING countIf(is_request) > 0`;
}

export function peers(): Dashboard {
  return dashboard(
    UIDS.peers,
    'Peers and registrations',
    'OPTIONS health per peer, REGISTER outcomes and delay.',
  )
    .withVariable(vmVariable())
    .withVariable(nodeVariable())
    .withPanel(
      table(
        'OPTIONS per peer (probes sent to it, answers, last answer)',
        `SELECT peer, any(peer_vm) AS vm, count() AS probes, countIf(answered AND final_status < 300) AS ok,
           countIf(answered AND final_status >= 300) AS error_answers, countIf(NOT answered) AS unanswered,
           round(countIf(NOT answered OR final_status >= 300) / count(), 4) AS failing_ratio,
           maxIf(answered_at, answered) AS last_answer
         FROM (${transactions('OPTIONS')}) GROUP BY peer ORDER BY failing_ratio DESC, probes DESC LIMIT 500`,
        { size: { w: 24, h: 8 }, steps: ['green', [0.01, 'orange'], [0.5, 'red']] },
      ),
    )
    .withPanel(
      timeseries(
        'OPTIONS unanswered per peer',
        `SELECT $__timeInterval(sent) AS t, peer, countIf(NOT answered OR final_status >= 300) AS failing
         FROM (${transactions('OPTIONS')}) GROUP BY t, peer ORDER BY t`,
      ),
    )
    .withPanel(
      timeseries(
        'REGISTER final answers by status',
        `SELECT $__timeInterval(sent) AS t, if(answered, toString(final_status), 'unanswered') AS status, count() AS registers
         FROM (${transactions('REGISTER')}) GROUP BY t, status ORDER BY t`,
      ),
    )
    .withPanel(
      timeseries(
        'RRD p50 / p95 (REGISTER to its final answer)',
        `SELECT $__timeInterval(sent) AS t,
           quantileExact(0.5)(dateDiff('millisecond', sent, answered_at)) AS p50,
           quantileExact(0.95)(dateDiff('millisecond', sent, answered_at)) AS p95
         FROM (${transactions('REGISTER')}) WHERE answered GROUP BY t ORDER BY t`,
        { unit: 'ms' },
      ),
    )
    .withPanel(
      table(
        'REGISTER outcomes per VM',
        `SELECT peer_vm AS vm, peer AS registrar, count() AS registers, countIf(answered AND final_status < 300) AS ok,
           countIf(final_status IN (401, 407)) AS challenged, countIf(answered AND final_status >= 300 AND final_status NOT IN (401, 407)) AS refused,
           countIf(NOT answered) AS unanswered
         FROM (${transactions('REGISTER')}) GROUP BY vm, registrar ORDER BY refused + unanswered DESC LIMIT 500`,
      ),
    )
    .build();
}
