/**
 * What the row functions (rows.ts, call-rows.ts, alert-rows.ts, health.ts) write a row into: field
 * by field, in the table's column order, then `endRow()`. The store gets Native blocks
 * (native-block.ts); the TabSeparated form (tsv.ts) is the readable view of the same rows, for
 * tests and tools.
 */
export interface RowWriter {
  /** Complete rows written. */
  readonly rows: number;
  /** A string whose characters are bytes (what the SIP parser produced). */
  latin1(value: string): this;
  /** A string of Unicode text (configuration, file names, RTCP CNAME). */
  utf8(value: string): this;
  bytes(value: Uint8Array): this;
  /** An unsigned integer, clamped to [0, max] (a hostile or corrupt figure must not fail a batch). */
  uint(value: number, max?: number): this;
  /** UInt64 from a bigint (event ids). */
  bigUint(value: bigint): this;
  int(value: number): this;
  float(value: number): this;
  bool(value: boolean): this;
  null(): this;
  nullableUint(value: number | null, max: number): this;
  nullableFloat(value: number | null): this;
  /** A capture time in ns since the epoch (clamped to what DateTime64(9) holds). */
  time(ns: bigint): this;
  /** A time in ms since the epoch. */
  timeMs(ms: number): this;
  uintArray(values: readonly number[], max: number): this;
  timeMsArray(values: readonly number[]): this;
  stringArray(values: readonly string[], encoding: 'latin1' | 'utf8'): this;
  /** Map(String, Float64). */
  floatMap(entries: ReadonlyArray<[string, number]>): this;
  /** Map(String, String). */
  stringMap(entries: ReadonlyArray<[string, string]>): this;
  endRow(): void;
}
