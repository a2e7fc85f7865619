/** Alert transitions as rows of the alerts table (ingest/schema/tables.ts ALERTS), in column order. */
import type { AlertTransition } from '../core/alert.js';
import type { RowWriter } from './row-writer.js';

export function alertRow(t: AlertTransition, evaluator: string, out: RowWriter): void {
  out
    .timeMs(t.at)
    .utf8(t.rule)
    .utf8(t.fingerprint)
    .utf8(t.to)
    .utf8(t.from)
    .timeMs(t.activeSince)
    .nullableFloat(t.value)
    .uint(t.attempts)
    .float(t.threshold)
    .stringMap(Object.entries(t.labels))
    .stringMap(Object.entries(t.annotations))
    .stringArray(t.examples, 'latin1')
    .utf8(evaluator);
  out.endRow();
}
