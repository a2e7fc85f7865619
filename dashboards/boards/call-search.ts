/** Call search: every call (each leg) in range matching the filters, each row linking to its detail. */
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import { table } from '../panels.js';
import {
  CALL_SCOPE,
  nodeVariable,
  outcomeVariable,
  peerVariable,
  text,
  textVariable,
  USER_MATCH,
  vmVariable,
} from '../variables.js';
import { CALL_DETAIL_LINK, dashboard, UIDS } from './common.js';

export const CALL_SEARCH_SQL = `SELECT start, call_id, from_user, to_user, caller_ip, caller_vm, callee_ip, callee_vm,
    outcome, final_status, reason_phrase, pdd_ms, duration_sec, billsec, ended_by, mos_min, messages,
    if(is_edge, '', edge_call_id) AS edge_call
  FROM calls FINAL
  WHERE $__timeFilter_ms(start) AND ${CALL_SCOPE}
    AND $__conditionalAll(outcome IN (\${outcome}), $outcome)
    AND ${USER_MATCH}
    AND (${text('call_id')} = '' OR call_id = ${text('call_id')} OR edge_call_id = ${text('call_id')})
    AND (${text('status')} = '' OR toString(final_status) = ${text('status')})
  ORDER BY start DESC LIMIT 1000`;

export function callSearch(): Dashboard {
  return dashboard(
    UIDS.search,
    'Call search',
    'Calls (every B2BUA leg) by time, VM, node, peer, From/To user, Call-ID, outcome and final status; a Call-ID opens the call.',
  )
    .withVariable(vmVariable())
    .withVariable(nodeVariable())
    .withVariable(peerVariable())
    .withVariable(outcomeVariable())
    .withVariable(textVariable('user', 'From/To user', 'part of the From or To user'))
    .withVariable(textVariable('call_id', 'Call-ID', 'a Call-ID (any leg)'))
    .withVariable(textVariable('status', 'Final status', 'e.g. 503'))
    .withPanel(
      table('Calls', CALL_SEARCH_SQL, {
        size: { w: 24, h: 20 },
        links: [CALL_DETAIL_LINK],
        description: 'Newest first, at most 1,000 rows: narrow the range or the filters for more.',
      }),
    )
    .build();
}
