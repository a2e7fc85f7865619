/** The call-detail dashboard's ladder: our panel plugin (ladder-panel/) over its own queries. */
import type * as cog from '@grafana/grafana-foundation-sdk/cog';
import { type Panel, PanelBuilder } from '@grafana/grafana-foundation-sdk/dashboard';
import { asQuery, DATASOURCE } from './clickhouse.js';
import { ladderPanelTargets } from './ladder-queries.js';
import type { Size } from './panels.js';

export const LADDER_PANEL_ID = 'callscope-ladder-panel';

export function ladderPanel(size: Size): cog.Builder<Panel> {
  return new PanelBuilder()
    .type(LADDER_PANEL_ID)
    .title('Ladder')
    .description(
      'Every leg of the call: messages in capture order, SDP, media bars; click an arrow for the raw message.',
    )
    .targets(
      ladderPanelTargets({ ...DATASOURCE }).map((t) => asQuery({ ...t, format: 1, queryType: 'table' })),
    )
    .height(size.h)
    .span(size.w);
}
