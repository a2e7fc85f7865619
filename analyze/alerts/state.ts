/**
 * The state of one rule's alerts, one per group (a VM, a peer...): inactive → pending → firing →
 * resolved, moved by each evaluation's values. Pure (no I/O, no clock): the live evaluator and the
 * replay feed it the same values at the same times and get the same transitions.
 *
 * - over: a value, from at least min-attempts, past the threshold;
 * - pending becomes firing once it has been over for the rule's `for`; pending that is not over any
 *   more goes back to inactive;
 * - firing resolves when the value is back past the resolve threshold (hysteresis), or when there is
 *   nothing left to judge (too few attempts, or the group is gone): an alert never stays firing on
 *   no evidence;
 * - only pending and firing groups are held, at most `maxAlerts` per rule (more are counted).
 */
import { createHash } from 'node:crypto';
import type { AlertState, AlertTransition } from '../../core/alert.js';
import type { AlertRule } from './rules.js';

export interface GroupValue {
  /** The group's labels (vm, peer...): empty for a rule without `by`. */
  group: Record<string, string>;
  value: number | null;
  attempts: number;
  examples: string[];
}

/** A transition before the evaluator adds labels and annotations: the group it is about. */
export interface StateChange extends Omit<AlertTransition, 'labels' | 'annotations'> {
  group: Record<string, string>;
}

interface Held {
  state: 'pending' | 'firing';
  activeSince: number;
  firingSince: number;
  group: Record<string, string>;
  last: GroupValue;
}

/** Stable id of a rule and group: the same in every process and every replay. */
export function fingerprintOf(rule: string, group: Record<string, string>): string {
  const h = createHash('sha256').update(rule);
  for (const k of Object.keys(group).sort()) h.update(`\0${k}\0${group[k]}`);
  return h.digest('hex').slice(0, 16);
}

/** A firing alert as the evaluator keeps it between evaluations. */
export interface FiringAlert {
  fingerprint: string;
  group: Record<string, string>;
  firingSince: number;
  last: GroupValue;
}

export class RuleState {
  private readonly held = new Map<string, Held>();
  /** Groups that went over while maxAlerts were already held (not tracked). */
  overflow = 0;

  constructor(
    readonly rule: AlertRule,
    private readonly maxAlerts = 10_000,
  ) {}

  private over(v: GroupValue): boolean {
    if (v.value === null || v.attempts < this.rule.minAttempts) return false;
    return this.rule.direction === 'above' ? v.value > this.rule.threshold : v.value < this.rule.threshold;
  }

  /** Back past the resolve threshold (without hysteresis: simply not over). */
  private back(v: GroupValue): boolean {
    if (v.value === null || v.attempts < this.rule.minAttempts) return true;
    if (this.rule.resolve === this.rule.threshold) return !this.over(v);
    return this.rule.direction === 'above' ? v.value < this.rule.resolve : v.value > this.rule.resolve;
  }

  /** One evaluation at `at` with every group's value; returns the transitions, in group order. */
  step(at: number, values: readonly GroupValue[]): StateChange[] {
    const out: StateChange[] = [];
    const seen = new Set<string>();
    const transition = (
      fingerprint: string,
      from: AlertState,
      to: AlertState,
      since: number,
      v: GroupValue,
      group: Record<string, string>,
    ) =>
      out.push({
        rule: this.rule.name,
        fingerprint,
        from,
        to,
        at,
        activeSince: since,
        value: v.value,
        attempts: v.attempts,
        threshold: to === 'resolved' ? this.rule.resolve : this.rule.threshold,
        examples: v.examples,
        group,
      });
    for (const v of values) {
      const fp = fingerprintOf(this.rule.name, v.group);
      seen.add(fp);
      const h = this.held.get(fp);
      if (h === undefined) {
        if (!this.over(v)) continue;
        if (this.held.size >= this.maxAlerts) {
          this.overflow++;
          continue;
        }
        const firing = this.rule.forMs === 0;
        this.held.set(fp, {
          state: firing ? 'firing' : 'pending',
          activeSince: at,
          firingSince: at,
          group: v.group,
          last: v,
        });
        transition(fp, 'inactive', firing ? 'firing' : 'pending', at, v, v.group);
        continue;
      }
      h.last = v;
      if (h.state === 'pending') {
        if (!this.over(v)) {
          this.held.delete(fp);
          transition(fp, 'pending', 'inactive', h.activeSince, v, h.group);
        } else if (at - h.activeSince >= this.rule.forMs) {
          h.state = 'firing';
          h.firingSince = at;
          transition(fp, 'pending', 'firing', h.activeSince, v, h.group);
        }
      } else if (this.back(v)) {
        this.held.delete(fp);
        transition(fp, 'firing', 'resolved', h.activeSince, v, h.group);
      }
    }
    // A held group without a row this time has nothing left to judge.
    for (const [fp, h] of [...this.held]) {
      if (seen.has(fp)) continue;
      const none: GroupValue = { group: h.group, value: null, attempts: 0, examples: [] };
      this.held.delete(fp);
      transition(fp, h.state, h.state === 'firing' ? 'resolved' : 'inactive', h.activeSince, none, h.group);
    }
    return out;
  }

  firing(): FiringAlert[] {
    const out: FiringAlert[] = [];
    for (const [fingerprint, h] of this.held)
      if (h.state === 'firing')
        out.push({ fingerprint, group: h.group, firingSince: h.firingSince, last: h.last });
    return out;
  }

  get size(): number {
    return this.held.size;
  }
}
