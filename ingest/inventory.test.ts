import { afterEach, describe, expect, it, vi } from 'vitest';
import type { VmAttribution } from '../capture/attribution.js';
import { InventoryRecorder, type InventorySource } from './inventory.js';
import type { VmInventoryEntry } from './rows.js';

/** A source whose entries() returns `generation` entries, and whose change listener the test fires. */
function source(): { source: InventorySource; change: () => void; state: { generation: number } } {
  const state = { generation: 1 };
  let listener = () => {};
  return {
    state,
    change: () => listener(),
    source: {
      entries: () =>
        Array.from({ length: state.generation }, (_, i) => ({ vmId: `vm${i}` }) as VmInventoryEntry),
      onChange: (l) => {
        listener = l;
      },
    },
  };
}

const attribution = { ipsOf: () => [] } as unknown as VmAttribution;

/** Inventory writes that wait until the test releases them. */
function hangingWriter() {
  const calls: Array<{ entries: number; release: () => void }> = [];
  const write = (entries: readonly VmInventoryEntry[]) =>
    new Promise<void>((resolve) => {
      calls.push({ entries: entries.length, release: resolve });
    });
  return { write, calls };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('InventoryRecorder', () => {
  it('keeps one write in flight and at most one queued, of the latest entries', async () => {
    vi.useFakeTimers();
    const s = source();
    const w = hangingWriter();
    const recorder = new InventoryRecorder({
      source: s.source,
      attribution,
      write: w.write,
      refreshMs: 1000,
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(w.calls).toHaveLength(1); // the first write hangs
    for (let i = 0; i < 50; i++) {
      s.state.generation = 2 + i;
      s.change();
      await vi.advanceTimersByTimeAsync(1000);
    }
    expect(w.calls).toHaveLength(1); // the others coalesced
    w.calls[0]!.release();
    await vi.advanceTimersByTimeAsync(0);
    expect(w.calls).toHaveLength(2);
    expect(w.calls[1]!.entries).toBe(51); // the latest entries, not those of the first request
    const stopped = recorder.stop();
    let done = false;
    void stopped.then(() => {
      done = true;
    });
    w.calls[1]!.release();
    await vi.advanceTimersByTimeAsync(0);
    expect(w.calls).toHaveLength(3); // stop's final write, after the one in flight
    expect(done).toBe(false);
    w.calls[2]!.release();
    await stopped;
    expect(recorder.rows).toBe(1 + 51 + 51);
    expect(recorder.failures).toBe(0);
  });

  it('counts a failed write and goes on', async () => {
    const s = source();
    let fail = true;
    const write = async () => {
      if (fail) throw new Error('store down');
    };
    const recorder = new InventoryRecorder({ source: s.source, attribution, write });
    await new Promise((resolve) => setImmediate(resolve));
    fail = false;
    await recorder.stop();
    expect(recorder.failures).toBe(1);
    expect(recorder.rows).toBe(1);
  });
});
