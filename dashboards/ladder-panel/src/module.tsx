/**
 * Grafana's entry point: Grafana loads `module.js` (built by ../build.mjs as AMD) and reads `plugin`.
 */
import { PanelPlugin } from '@grafana/data';
import { DEFAULT_OPTIONS, type LadderOptions } from './options';
import { LadderPanel } from './panel';

export const plugin = new PanelPlugin<LadderOptions>(LadderPanel).setPanelOptions((builder) =>
  builder
    .addBooleanSwitch({
      path: 'showSdp',
      name: 'SDP summaries',
      description: 'Offer/answer codecs and addresses under the arrows that carry SDP',
      defaultValue: DEFAULT_OPTIONS.showSdp,
    })
    .addBooleanSwitch({
      path: 'showMedia',
      name: 'Media bars',
      description: 'Final figures of each RTP stream, drawn between its two ends',
      defaultValue: DEFAULT_OPTIONS.showMedia,
    })
    .addBooleanSwitch({
      path: 'showLogs',
      name: 'HEP logs',
      description: 'Log lines sent over HEP with the Call-ID (e.g. Kamailio hlog)',
      defaultValue: DEFAULT_OPTIONS.showLogs,
    })
    .addNumberInput({
      path: 'maxMessages',
      name: 'Max messages drawn',
      description: 'Arrows drawn at most; the rest are counted below the ladder',
      defaultValue: DEFAULT_OPTIONS.maxMessages,
      settings: { min: 1, max: 2000, integer: true },
    }),
);
