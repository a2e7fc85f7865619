/**
 * The V8 settings callscope's entry points run with (the CLI, the benchmarks), set before any work.
 *
 * Allocation-site pretenuring off. V8 watches where objects are allocated and, when a site's objects
 * survived a few young collections, allocates that site's objects straight in the old generation from
 * then on. A pipeline's events and parsed messages survive a young collection or two while a read's
 * batch goes through the sinks, then die: once V8 has decided to pretenure them, each such object in
 * the old generation keeps the young objects it points to alive through every scavenge, the young
 * collections copy tens of MB and full collections follow. Whether V8 takes that decision depended on
 * compiler timing: the same process was either fast or 3× slower at parsing SIP (measured on a
 * SIP-only capture: `analyze` 5.6 s and 430 MB with it, 3.9 s and 290 MB without, every run; see
 * docs/PERFORMANCE.md).
 *
 * The young generation's size (`--max-semi-space-size=64`) cannot be set after start: the CLI's shebang
 * and the npm scripts pass it.
 */
import { setFlagsFromString } from 'node:v8';

let tuned = false;

export function tuneRuntime(): void {
  if (tuned) return;
  tuned = true;
  setFlagsFromString('--no-allocation-site-pretenuring');
}
