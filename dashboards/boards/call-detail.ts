/**
 * Call detail, for the Call-ID in `call_id` (any leg): the ladder, the legs' records, the messages
 * with raw SIP, each stream's figures and its interval figures over the call, RTCP beside them. The
 * queries name the call's Call-IDs, which the tables' keys (hour, Call-ID) and bloom indexes serve;
 * they take no time range, so a link from any range opens the whole call.
 */
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import { ladderPanel } from '../ladder.js';
import { table, timeseries } from '../panels.js';
import { CALL_LEGS, LEG_IDS, textVariable } from '../variables.js';
import { dashboard, UIDS } from './common.js';

export const CALL_RECORDS_SQL = `SELECT call_id, if(is_edge, 'edge', linked_by) AS leg, outcome, final_status, reason_phrase,
    from_user, to_user, caller_ip, caller_vm, callee_ip, callee_vm, start, answer, \`end\`, pdd_ms, duration_sec,
    billsec, ended_by, reason_text, codecs_answered, messages, retransmissions, streams, mos_min, linked_call_ids
  FROM calls FINAL WHERE ${CALL_LEGS} ORDER BY start LIMIT 100`;

const STREAM = `concat(call_id, ' ', src_ip, ':', toString(src_port), ' → ', dst_ip, ':', toString(dst_port))`;

function intervals(title: string, column: string, unit: string): ReturnType<typeof timeseries> {
  return timeseries(
    title,
    `SELECT interval_end AS time, ${STREAM} AS stream, ${column} AS value
     FROM media_reports WHERE ${LEG_IDS} AND kind = 'interval' AND has_interval
     ORDER BY time LIMIT 1 BY event_id`,
    { unit, size: { w: 8, h: 8 } },
  );
}

export function callDetail(): Dashboard {
  return dashboard(
    UIDS.detail,
    'Call detail',
    'One call: its ladder (every leg), records, messages with raw SIP, media per direction and RTCP.',
  )
    .time({ from: 'now-7d', to: 'now' })
    .refresh('')
    .withVariable(textVariable('call_id', 'Call-ID', 'the call (any of its legs)'))
    .withPanel(ladderPanel({ w: 24, h: 18 }))
    .withPanel(table('Legs (call records)', CALL_RECORDS_SQL, { size: { w: 24, h: 6 } }))
    .withPanel(
      table(
        'Messages',
        `SELECT time, call_id, concat(src_ip, ':', toString(src_port)) AS source,
           concat(dst_ip, ':', toString(dst_port)) AS destination, transport,
           if(is_request, method, concat(toString(status), ' ', reason_phrase)) AS message,
           concat(toString(cseq_num), ' ', cseq_method) AS cseq, retransmission, src_vm, dst_vm, raw
         FROM sip_messages WHERE ${LEG_IDS}
         ORDER BY time, event_id LIMIT 1 BY event_id LIMIT 5000`,
        { size: { w: 24, h: 10 } },
      ),
    )
    .withPanel(
      table(
        'Media streams (final figures, per direction)',
        `SELECT call_id, src_ip, src_port, dst_ip, dst_port, src_vm, dst_vm, codec, ssrc, packets, lost, loss_percent,
           mean_jitter_ms, max_jitter_ms, max_delta_ms, mos, min_mos, r_factor, start_time, end_time, end_reason
         FROM media_reports WHERE ${LEG_IDS} AND kind = 'final'
         ORDER BY start_time LIMIT 1 BY event_id LIMIT 200`,
        { size: { w: 24, h: 6 } },
      ),
    )
    .withPanel(intervals('Jitter per interval', 'interval_jitter_ms', 'ms'))
    .withPanel(intervals('Loss per interval', 'interval_loss_percent', 'percent'))
    .withPanel(intervals('MOS per interval', 'interval_mos', 'none'))
    .withPanel(
      table(
        'RTCP',
        `SELECT time, call_id, origin, report_kind, src_ip, src_port, dst_ip, dst_port, ssrc, fraction_lost,
           cumulative_lost, jitter_ms, round_trip_ms, xr_mos_lq, xr_mos_cq
         FROM rtcp_reports WHERE ${LEG_IDS}
         ORDER BY time LIMIT 1 BY event_id LIMIT 1000`,
        { size: { w: 24, h: 8 } },
      ),
    )
    .build();
}
