/**
 * core/sip-message.ts (reached through core types the panel imports) names Node's Buffer in fields the
 * panel never reads; the panel runs in a browser, so the type is declared here instead of pulling in
 * every Node global with @types/node.
 */
type Buffer = Uint8Array;
