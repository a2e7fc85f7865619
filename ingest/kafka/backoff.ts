/** Waiting between retries: exponential, bounded, jittered, and interruptible. */

export interface BackoffOptions {
  /** First delay, ms. */
  initialMs?: number;
  /** Largest delay, ms: a store that is down for an hour is retried this often, not less. */
  maxMs?: number;
  /** Growth per attempt. */
  factor?: number;
  /** Fraction of the delay drawn at random (0..1): consumers that failed together retry apart. */
  jitter?: number;
}

/** Delay before retry number `attempt` (0-based). */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random = Math.random): number {
  const initial = options.initialMs ?? 200;
  const max = options.maxMs ?? 10_000;
  const factor = options.factor ?? 2;
  const jitter = Math.min(1, Math.max(0, options.jitter ?? 0.3));
  const base = Math.min(max, initial * factor ** Math.min(attempt, 60));
  // Jitter below the base only, so maxMs stays a true bound.
  return Math.round(base * (1 - jitter * random()));
}

/**
 * Sleeps `ms`, waking every `tickMs` to run `onTick` (heartbeats) and returning early, with false,
 * once `keepGoing()` turns false. Resolves true when the full time elapsed.
 */
export async function sleepWhile(
  ms: number,
  keepGoing: () => boolean,
  onTick?: () => Promise<void>,
  tickMs = 250,
): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (!keepGoing()) return false;
    const left = end - Date.now();
    if (left <= 0) return true;
    await new Promise((r) => setTimeout(r, Math.min(left, tickMs)));
    if (onTick) await onTick();
  }
}
