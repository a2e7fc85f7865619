/** The panel's options (set in the panel editor; defaults apply to a panel saved without them). */
export interface LadderOptions {
  /** SDP offer/answer summaries under the arrows that carry SDP. */
  showSdp: boolean;
  /** The call's media streams as bars below the messages. */
  showMedia: boolean;
  /** HEP log lines (e.g. Kamailio `hlog()`) between the messages. */
  showLogs: boolean;
  /** Arrows drawn at most; the rest are counted below the ladder. */
  maxMessages: number;
}

export const DEFAULT_OPTIONS: LadderOptions = {
  showSdp: true,
  showMedia: true,
  showLogs: true,
  maxMessages: 1000,
};
