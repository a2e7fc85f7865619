/**
 * Outcome classes and the KPI rules they feed (docs/CALLS.md). Every final status maps to exactly one
 * class; the NOC's "failed" is the network's or a server's failure, never the user's choice.
 */
import type { CallOutcome } from '../../core/call.js';

/** Final statuses that are the called user's answer, not a failure of the network. */
const USER_REJECTIONS = new Set([401, 403, 404, 407, 480, 603, 604, 606, 607, 608]);

/**
 * The outcome of a call from the final status its caller got (or none), whether it was answered, and
 * whether the caller cancelled it. `timedOut`: no final response and Timer B (32 s) has passed.
 */
export function outcomeOf(
  finalStatus: number | null,
  answered: boolean,
  cancelled: boolean,
  timedOut: boolean,
): CallOutcome {
  if (answered) return 'answered';
  if (cancelled) return 'cancelled';
  if (finalStatus === null) return timedOut ? 'noAnswer' : 'inProgress';
  if (finalStatus >= 200 && finalStatus < 300) return 'answered';
  if (finalStatus >= 300 && finalStatus < 400) return 'redirected';
  if (finalStatus === 486 || finalStatus === 600) return 'busy';
  if (finalStatus === 487) return 'cancelled';
  if (USER_REJECTIONS.has(finalStatus)) return 'rejected';
  return 'failed';
}

/** The NOC's failed call: failed by the network or a server, or never answered at all. */
export function isFailure(outcome: CallOutcome): boolean {
  return outcome === 'failed' || outcome === 'noAnswer';
}

/** RFC 6076 SEER's numerator: answered, or answered 480, 486, 600 or 603 (the user's own answer). */
export function isEffective(outcome: CallOutcome, finalStatus: number | null): boolean {
  return (
    outcome === 'answered' ||
    finalStatus === 480 ||
    finalStatus === 486 ||
    finalStatus === 600 ||
    finalStatus === 603
  );
}

/**
 * RFC 6076 ISA's numerator: 408, 500, 503 or 504; a call never answered at all counts too (its
 * client transaction timed out: the 408 it never sends).
 */
export function isIneffective(outcome: CallOutcome, finalStatus: number | null): boolean {
  return (
    outcome === 'noAnswer' ||
    finalStatus === 408 ||
    finalStatus === 500 ||
    finalStatus === 503 ||
    finalStatus === 504
  );
}
