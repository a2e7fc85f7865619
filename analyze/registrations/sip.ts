/** What the registration and probe trackers read from a parsed SIP message, defensively. */
import { ownedKeyPart } from '../../capture/sip/bounded-map.js';
import type { SipMessage, SipNameAddr, SipUri } from '../../core/sip-message.js';

/** RFC 3261 §20.19/§10.2.1: delta-seconds; a larger value means 2³²−1. */
const MAX_DELTA_SECONDS = 4_294_967_295;

/**
 * A delta-seconds value (Expires header, `expires` parameter): the number, null when absent, or
 * 'bad' when present but not digits (garbage is not a number of seconds: the caller counts it).
 */
export function parseDeltaSeconds(value: string | undefined | null): number | null | 'bad' {
  if (value === undefined || value === null) return null;
  const text = value.trim();
  if (text === '') return 'bad';
  if (!/^\d+$/.test(text)) return 'bad';
  if (text.length > 10) return MAX_DELTA_SECONDS;
  return Math.min(Number(text), MAX_DELTA_SECONDS);
}

/** The first header of that (canonical) name, or undefined. */
export function headerOf(sip: SipMessage, name: string): string | undefined {
  const lower = name.toLowerCase();
  for (const [n, v] of sip.headers) if (n === name || n.toLowerCase() === lower) return v;
  return undefined;
}

/** A header parameter by name, whatever its case. */
export function paramOf(params: Record<string, string>, name: string): string | undefined {
  const direct = params[name];
  if (typeof direct === 'string') return direct;
  for (const [k, v] of Object.entries(params)) if (k.toLowerCase() === name) return v;
  return undefined;
}

/** A Contact URI compared as registrars compare them: scheme, user, host (any case), port. */
export function contactKey(contact: SipNameAddr): string {
  const uri: SipUri | null = contact.uri;
  if (uri === null) return contact.raw.trim() === '*' ? '*' : `raw:${ownedKeyPart(contact.raw.trim())}`;
  return ownedKeyPart(
    `${uri.scheme.toLowerCase()}:${uri.user ?? ''}@${uri.host.toLowerCase()}:${uri.port ?? ''}`,
  );
}

/** The URI of a Contact as written (bounded, owned). */
export function contactUri(contact: SipNameAddr): string {
  if (contact.uri === null) return ownedKeyPart(contact.raw.trim());
  return ownedKeyPart(contact.uri.raw);
}

/** Owned copy of a packet string, at most 256 characters; null stays null. */
export function owned(text: string | null | undefined): string | null {
  return text === null || text === undefined ? null : ownedKeyPart(text);
}
