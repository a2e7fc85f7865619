/**
 * Failover detection: an address that served SIP or RTP (seen as the source of SIP or RTP) and then
 * shows up behind another MAC — another VM — is a failover, as when Pacemaker or keepalived move a
 * virtual IP between two PBX or proxy VMs. docs/FAILOVER.md.
 *
 * Fed by the capture pipeline (capture/pipeline.ts), which alone sees frames: each SIP message with
 * the source MAC of its frame, a sample of RTP packets, and every ARP request or reply. Signals:
 * - a gratuitous ARP (sender address = target address: `arping -U`, what IPaddr2 and keepalived send)
 *   for the address from a MAC other than the one it served from: `gratuitous-arp`;
 * - SIP (or RTP) from the address behind another MAC: `sip-from-new-mac` (`rtp-from-new-mac`).
 * An ordinary ARP reply from a new MAC is no failover by itself (proxy ARP, a stale or duplicate
 * answer); the move is then confirmed by the first SIP or RTP behind that MAC.
 *
 * The service gap is measured here because only the capture knows which MAC answered: the last SIP
 * response the address sent from the old MAC, and the first from the new MAC at or after the move. The
 * failover is reported when that first answer comes (or, without one, `answerTimeoutMs` after the
 * move, at the end of the capture, or when the address is forgotten) — once, complete.
 *
 * State lives in the tracker the pipeline owns; capture time is its clock. Bounded: at most
 * `maxAddresses` addresses, the least recently active forgotten first (counted).
 */

import type { FailoverRecord, FailoverSignal } from '../../core/failover.js';
import type { LogFields } from '../../core/log.js';

export interface FailoverTrackerOptions {
  /** Addresses followed at most (default 65,536); the least recently active are forgotten first. */
  maxAddresses?: number;
  /** How long a move waits for the new MAC's first SIP answer before it is reported without one (default 120 s). */
  answerTimeoutMs?: number;
  /**
   * After a move, frames from the old MAC for this long are the old node's last packets (in flight, its
   * stack winding down) or a split brain, not a move back (default 30 s). Also the least time between
   * two failovers of one address, so that two hosts fighting over an address cannot flood the store.
   */
  holdDownMs?: number;
}

export interface FailoverTrackerHooks {
  /** MAC → VM id (the OVS inventory or a VM map); absent without one, and then the MAC names the VM. */
  vmOfMac?: (mac: string) => string | null;
  onFailover: (record: FailoverRecord) => void;
  /** Something a NOC should hear about (the old MAC still sending after a move). */
  onProblem?: (kind: string, message: string, fields: LogFields) => void;
}

export interface FailoverTrackerStats {
  /** Addresses followed now (sources of SIP or RTP), and those forgotten at the bound. */
  addresses: number;
  addressesForgotten: number;
  /** Failovers reported; of them, without an answer from the new MAC (timeout, end, forgotten). */
  failovers: number;
  withoutAnswer: number;
  /** Moves waiting for the new MAC's first answer now. */
  awaitingAnswer: number;
  /** Gratuitous ARPs seen, and those for addresses that never served SIP or RTP here (no failover). */
  gratuitousArps: number;
  gratuitousUnserved: number;
  /** Ordinary ARP from a new MAC for a served address: no failover by itself. */
  arpFromNewMac: number;
  /** The address behind another MAC of the same VM (a second NIC): no failover. */
  macChangesWithinVm: number;
  /** With a VM inventory: the address behind another MAC, neither of them a VM's (routed traffic). */
  macChangesOutsideVms: number;
  /** Frames from the old MAC within the hold-down after a move (ignored). */
  oldMacAfterMove: number;
}

export function emptyFailoverTrackerStats(): FailoverTrackerStats {
  return {
    addresses: 0,
    addressesForgotten: 0,
    failovers: 0,
    withoutAnswer: 0,
    awaitingAnswer: 0,
    gratuitousArps: 0,
    gratuitousUnserved: 0,
    arpFromNewMac: 0,
    macChangesWithinVm: 0,
    macChangesOutsideVms: 0,
    oldMacAfterMove: 0,
  };
}

/** One followed address. Times are capture times in ms (fractions kept until a record is made). */
interface AddressState {
  address: string;
  vlan: number | null;
  /** The MAC the address serves from now. */
  mac: string;
  /** Last SIP response from `mac`; null when none (yet). */
  lastAnswer: number | null;
  /** The MAC before the last move, and when it moved (-Infinity: never). */
  previousMac: string | null;
  movedAt: number;
  /** The last move, waiting for its first answer; null when none. */
  pending: FailoverRecord | null;
  deadline: number;
}

export class FailoverTracker {
  private readonly maxAddresses: number;
  private readonly answerTimeoutMs: number;
  private readonly holdDownMs: number;
  /** Two generations (capture/sip/bounded-map.ts's idea): the old one is dropped whole, in O(1) amortised. */
  private young = new Map<string, AddressState>();
  private old = new Map<string, AddressState>();
  private readonly awaiting = new Set<AddressState>();
  /** Capture time (ms) at which a move waiting for its first answer is reported anyway; tick() before it does nothing. */
  nextDeadline = Number.POSITIVE_INFINITY;
  private readonly counters = emptyFailoverTrackerStats();

  constructor(
    private readonly hooks: FailoverTrackerHooks,
    options: FailoverTrackerOptions = {},
  ) {
    this.maxAddresses = Math.max(2, options.maxAddresses ?? 65_536);
    this.answerTimeoutMs = options.answerTimeoutMs ?? 120_000;
    this.holdDownMs = options.holdDownMs ?? 30_000;
  }

  get stats(): FailoverTrackerStats {
    return {
      ...this.counters,
      addresses: this.young.size + this.old.size,
      awaitingAnswer: this.awaiting.size,
    };
  }

  /** A SIP message from `address` in a frame from `mac`; `answer`: a response. */
  sip(timeMs: number, address: string, vlan: number | null, mac: string, answer: boolean): void {
    this.served(timeMs, address, vlan, mac, answer, 'sip-from-new-mac');
  }

  /** An RTP or RTCP packet from `address` in a frame from `mac` (a sample of them is enough). */
  rtp(timeMs: number, address: string, vlan: number | null, mac: string): void {
    this.served(timeMs, address, vlan, mac, false, 'rtp-from-new-mac');
  }

  /** An ARP request or reply: `address` announced behind `mac` (its sender fields). */
  arp(timeMs: number, vlan: number | null, address: string, mac: string, gratuitous: boolean): void {
    if (gratuitous) this.counters.gratuitousArps++;
    // ARP is not service: it does not keep an address from being forgotten.
    const key = keyOf(address, vlan);
    const st = this.young.get(key) ?? this.old.get(key);
    if (st === undefined) {
      if (gratuitous) this.counters.gratuitousUnserved++;
      return;
    }
    if (st.mac === mac) return;
    if (!gratuitous) {
      this.counters.arpFromNewMac++;
      return;
    }
    this.changed(st, timeMs, mac, 'gratuitous-arp');
  }

  /** Reports the moves whose wait for an answer ran out by `nowMs`. Cheap when none is due. */
  tick(nowMs: number): void {
    if (nowMs < this.nextDeadline) return;
    let next = Number.POSITIVE_INFINITY;
    for (const st of [...this.awaiting]) {
      if (st.deadline <= nowMs) this.report(st);
      else next = Math.min(next, st.deadline);
    }
    this.nextDeadline = next;
  }

  /** End of input: every move still waiting is reported as it stands. */
  finish(): void {
    for (const st of [...this.awaiting]) this.report(st);
    this.nextDeadline = Number.POSITIVE_INFINITY;
  }

  private served(
    timeMs: number,
    address: string,
    vlan: number | null,
    mac: string,
    answer: boolean,
    signal: FailoverSignal,
  ): void {
    const key = keyOf(address, vlan);
    let st = this.young.get(key);
    if (st === undefined) {
      st = this.old.get(key);
      if (st === undefined) {
        st = {
          address,
          vlan,
          mac,
          lastAnswer: null,
          previousMac: null,
          movedAt: Number.NEGATIVE_INFINITY,
          pending: null,
          deadline: 0,
        };
      } else {
        this.old.delete(key);
      }
      this.remember(key, st);
    }
    if (st.mac !== mac && !this.changed(st, timeMs, mac, signal)) return;
    if (!answer) return;
    const pending = st.pending;
    if (pending !== null && timeMs >= pending.time) {
      pending.firstAnswerAfter = Math.floor(timeMs);
      if (pending.lastAnswerBefore !== null)
        pending.gapMs = pending.firstAnswerAfter - pending.lastAnswerBefore;
      this.report(st);
    }
    st.lastAnswer = timeMs;
  }

  /**
   * The address showed up behind `mac`, not its current MAC. Returns false when the frame is to be
   * ignored (the old MAC within the hold-down).
   */
  private changed(st: AddressState, timeMs: number, mac: string, signal: FailoverSignal): boolean {
    const c = this.counters;
    if (st.previousMac === mac && timeMs - st.movedAt < this.holdDownMs) {
      c.oldMacAfterMove++;
      // The pipeline's ProblemLog keeps this to a few lines a minute.
      this.hooks.onProblem?.(
        'failover-old-mac',
        'an address that failed over is still sending from its old MAC (old node not down? two nodes claim it)',
        { address: st.address, oldMac: mac, newMac: st.mac },
      );
      return false;
    }
    const vmOf = this.hooks.vmOfMac;
    if (vmOf !== undefined) {
      const was = vmOf(st.mac);
      const now = vmOf(mac);
      if (was !== null && was === now) {
        c.macChangesWithinVm++;
        st.mac = mac;
        return true;
      }
      // Behind a router every remote address carries the router's MAC: two routers are no failover.
      if (was === null && now === null && signal !== 'gratuitous-arp') {
        c.macChangesOutsideVms++;
        st.mac = mac;
        return true;
      }
    }
    if (timeMs - st.movedAt < this.holdDownMs) {
      // A third MAC within the hold-down: follow it without another failover.
      st.mac = mac;
      return true;
    }
    // A move that never got its answer is reported as it stands before the next begins.
    if (st.pending !== null) this.report(st);
    const time = Math.floor(timeMs);
    st.pending = {
      time,
      address: st.address,
      vlan: st.vlan,
      oldMac: st.mac,
      newMac: mac,
      oldVm: vmOf?.(st.mac) ?? st.mac,
      newVm: vmOf?.(mac) ?? mac,
      signal,
      lastAnswerBefore: st.lastAnswer === null ? null : Math.floor(st.lastAnswer),
      firstAnswerAfter: null,
      gapMs: null,
    };
    st.previousMac = st.mac;
    st.movedAt = timeMs;
    st.mac = mac;
    st.lastAnswer = null;
    st.deadline = timeMs + this.answerTimeoutMs;
    this.awaiting.add(st);
    this.nextDeadline = Math.min(this.nextDeadline, st.deadline);
    return true;
  }

  private report(st: AddressState): void {
    const record = st.pending;
    this.awaiting.delete(st);
    if (record === null) return;
    st.pending = null;
    this.counters.failovers++;
    if (record.firstAnswerAfter === null) this.counters.withoutAnswer++;
    this.hooks.onFailover(record);
  }

  private remember(key: string, st: AddressState): void {
    if (this.young.size >= this.maxAddresses >> 1) {
      // The old generation goes whole; a move of one of its addresses still waiting is reported.
      for (const gone of this.old.values()) if (gone.pending !== null) this.report(gone);
      this.counters.addressesForgotten += this.old.size;
      this.old = this.young;
      this.young = new Map();
    }
    this.young.set(key, st);
  }
}

function keyOf(address: string, vlan: number | null): string {
  return vlan === null ? address : `${vlan}/${address}`;
}
