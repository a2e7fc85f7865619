/**
 * Capture-health rows (table capture_health): the live capture's kernel and own counters every N
 * seconds and at stop, with the events the store could not keep up with. Values travel as
 * TabSeparated data in the column order of CAPTURE_HEALTH (schema/tables.ts).
 */
import type { HealthRecord } from '../core/health.js';

export type { HealthRecord } from '../core/health.js';

import type { RowWriter } from './row-writer.js';

const U32 = 0xffffffff;

export function healthRow(record: HealthRecord, runId: string, out: RowWriter): void {
  out
    .time(record.timeNs)
    .utf8(record.interface)
    .uint(record.received)
    .uint(record.droppedKernel)
    .uint(record.droppedInterface)
    .uint(record.receivedDelta)
    .uint(record.droppedKernelDelta)
    .uint(record.droppedInterfaceDelta)
    .uint(record.packets)
    .uint(record.bytes)
    .uint(record.packetsDelta)
    .uint(record.bytesDelta)
    .uint(record.droppedOverload)
    .uint(record.droppedOverloadDelta)
    .uint(record.droppedEvents)
    .uint(record.reopenings, U32)
    .uint(record.linkDowns, U32)
    .bool(record.capturing)
    .bool(record.final)
    .uint(record.captureId, U32)
    .utf8(record.nodeName)
    .utf8(runId)
    .endRow();
}
