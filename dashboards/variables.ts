/**
 * The dashboards' variables and the SQL conditions they make. Values chosen from lists (VM, node,
 * peer, outcome) reach SQL through the datasource's quoting inside `$__conditionalAll`, so "All"
 * costs nothing. Free text (a user, a Call-ID, a status) is attacker-controlled (SIP headers) and may
 * hold `'` and `\`: it reaches SQL only percent-encoded and decoded by ClickHouse
 * (`decodeURLComponent('${v:percentencode}')`), which no value can break out of.
 */
import {
  CustomVariableBuilder,
  QueryVariableBuilder,
  TextBoxVariableBuilder,
  VariableHide,
  VariableRefresh,
  VariableSort,
} from '@grafana/grafana-foundation-sdk/dashboard';
import { CALL_OUTCOMES } from '../core/call.js';
import { DATASOURCE } from './clickhouse.js';

/** A free-text variable as a ClickHouse string expression. */
export const text = (name: string): string => `decodeURLComponent('\${${name}:percentencode}')`;

function listVariable(name: string, label: string, query: string): QueryVariableBuilder {
  return new QueryVariableBuilder(name)
    .label(label)
    .datasource({ ...DATASOURCE })
    .query(query.replace(/\s+/g, ' ').trim())
    .refresh(VariableRefresh.OnTimeRangeChanged)
    .sort(VariableSort.AlphabeticalAsc)
    .multi(true)
    .includeAll(true)
    .current({ text: 'All', value: '$__all' });
}

/** VMs seen on either side of a call in the time range. */
export const vmVariable = (): QueryVariableBuilder =>
  listVariable(
    'vm',
    'VM',
    `SELECT DISTINCT vm FROM (SELECT arrayJoin([caller_vm, callee_vm]) AS vm FROM calls
     WHERE $__timeFilter(start)) WHERE vm != '' ORDER BY vm LIMIT 1000`,
  );

export const nodeVariable = (): QueryVariableBuilder =>
  listVariable(
    'node',
    'Node',
    `SELECT DISTINCT node FROM calls WHERE $__timeFilter(start) ORDER BY node LIMIT 1000`,
  );

/** Peer addresses: either side of a call. */
export const peerVariable = (): QueryVariableBuilder =>
  listVariable(
    'peer',
    'Peer',
    `SELECT DISTINCT ip FROM (SELECT arrayJoin([caller_ip, callee_ip]) AS ip FROM calls
     WHERE $__timeFilter(start)) WHERE ip != '' ORDER BY ip LIMIT 1000`,
  );

export const outcomeVariable = (): CustomVariableBuilder =>
  new CustomVariableBuilder('outcome')
    .label('Outcome')
    .values(CALL_OUTCOMES.join(','))
    .multi(true)
    .includeAll(true)
    .current({ text: 'All', value: '$__all' });

export const textVariable = (name: string, label: string, description: string): TextBoxVariableBuilder =>
  new TextBoxVariableBuilder(name).label(label).description(description).defaultValue('');

export const hiddenText = (name: string): TextBoxVariableBuilder =>
  new TextBoxVariableBuilder(name).defaultValue('').hide(VariableHide.HideVariable);

/** Calls (of the `calls` table) a side of which is on the chosen VMs, of the chosen nodes. */
export const CALL_VM_SCOPE = `$__conditionalAll(hasAny([caller_vm, callee_vm], [\${vm}]), $vm)
  AND $__conditionalAll(node IN (\${node}), $node)`;

/** The same, and a side of which is one of the chosen peers. */
export const CALL_SCOPE = `${CALL_VM_SCOPE}
  AND $__conditionalAll(hasAny([caller_ip, callee_ip], [\${peer}]), $peer)`;

/** The user search: From or To user containing the text (the ngram indexes serve LIKE). */
export const USER_MATCH = `(${text('user')} = '' OR from_user LIKE concat('%', ${text('user')}, '%')
  OR to_user LIKE concat('%', ${text('user')}, '%'))`;

/** Every leg of the call the `call_id` variable names (as `callscope calls --call-id` finds them). */
export const CALL_LEGS = `(call_id = ${text('call_id')} OR edge_call_id = ${text('call_id')}
  OR has(linked_call_ids, ${text('call_id')}))`;

/** Rows of the messages/media tables whose Call-ID is one of the call's legs. */
export const LEG_IDS = `call_id IN (SELECT arrayJoin(arrayConcat([call_id, edge_call_id], linked_call_ids))
  FROM calls FINAL WHERE ${CALL_LEGS} UNION DISTINCT SELECT ${text('call_id')})`;

/** Messages and media rows of a VM (either side), for the per-VM views. */
export const EVENT_SCOPE = `
  $__conditionalAll(hasAny([src_vm, dst_vm], [\${vm}]), $vm)
  AND $__conditionalAll(node IN (\${node}), $node)`;
