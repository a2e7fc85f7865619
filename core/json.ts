/** Reading JSON payloads that arrive from other agents: never trusted, never thrown on. */

export type JsonObject = Record<string, unknown>;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function parseJsonObject(payload: Buffer): JsonObject | null {
  try {
    const value: unknown = JSON.parse(payload.toString('utf8'));
    return isObject(value) ? value : null;
  } catch {
    return null;
  }
}

export function finite(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}
