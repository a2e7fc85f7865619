/**
 * The store's tables, described once: the DDL (single node and cluster), the insert column lists of
 * the writer and the row encoders all follow these specs, and a test checks that a migrated database
 * has exactly these columns in this order. Reasons for each key choice are in docs/STORE.md.
 *
 * Changing a table: append the column here AND add a migration (`ADD COLUMN IF NOT EXISTS`), so that
 * a fresh database (version 1 creates from these specs) and an upgraded one end up identical.
 */

export interface ColumnSpec {
  name: string;
  type: string;
  /** Compression codec, e.g. `ZSTD(3)` for large text. */
  codec?: string;
  /** Filled by the store (`DEFAULT expr`): never in the writer's insert column list. */
  defaultExpression?: string;
  comment: string;
}

export interface IndexSpec {
  name: string;
  expression: string;
  type: string;
  granularity: number;
}

/**
 * How a table is laid out on a cluster: `sharded` tables are split over shards (a Replicated local
 * table per shard plus a Distributed table under the plain name); `everywhere` tables are small and
 * every node holds all their rows (one Replicated table, no Distributed).
 */
export type ClusterLayout = { kind: 'sharded'; shardingKey: string } | { kind: 'everywhere' };

export interface TableSpec {
  name: string;
  comment: string;
  columns: ColumnSpec[];
  indexes: IndexSpec[];
  /** ReplacingMergeTree, optionally with a version column (the newest version wins on merge). */
  versionColumn?: string;
  /** With versionColumn: a UInt8 column whose 1 deletes the row when its version wins (a tombstone). */
  deletedColumn?: string;
  partitionBy?: string;
  primaryKey?: string;
  orderBy: string;
  /** DateTime-typed expression the TTL counts days from; absent = the table never expires. */
  ttlExpression?: string;
  /** Event tables deduplicate retried inserts by token (Replicated tables do it natively). */
  dedupWindow: boolean;
  cluster: ClusterLayout;
}

const TIME = "DateTime64(9, 'UTC')";

/** Columns every event table carries, in this order, after its own leading columns. */
const provenance: ColumnSpec[] = [
  { name: 'capture_id', type: 'UInt32', comment: 'HEP capture agent id' },
  { name: 'node', type: 'LowCardinality(String)', comment: 'capture node name (HEP node / group id)' },
  {
    name: 'run_id',
    type: 'LowCardinality(String)',
    comment: "capture run that wrote the row (capture_runs.run_id); '' for live streams",
  },
  {
    name: 'stored_at',
    type: 'DateTime',
    defaultExpression: 'now()',
    codec: 'Delta, ZSTD(1)',
    comment: 'when the store received the row: retention counts from here (old capture files stay)',
  },
];

export const SIP_MESSAGES: TableSpec = {
  name: 'sip_messages',
  comment: 'one row per SIP message seen (retransmissions included, flagged)',
  columns: [
    { name: 'event_id', type: 'UInt64', comment: 'hash of capture id, node, time, 5-tuple and payload' },
    { name: 'time', type: TIME, comment: 'capture time' },
    { name: 'call_id', type: 'String', codec: 'ZSTD(1)', comment: 'Call-ID header' },
    { name: 'is_request', type: 'Bool', comment: 'request (true) or response (false)' },
    { name: 'method', type: 'LowCardinality(String)', comment: "request method; '' for responses" },
    { name: 'status', type: 'UInt16', comment: 'response status code; 0 for requests' },
    { name: 'reason_phrase', type: 'LowCardinality(String)', comment: 'response reason phrase' },
    { name: 'cseq_num', type: 'UInt32', comment: 'CSeq number' },
    { name: 'cseq_method', type: 'LowCardinality(String)', comment: 'CSeq method' },
    { name: 'from_user', type: 'String', comment: 'user part of the From URI' },
    { name: 'from_tag', type: 'String', codec: 'ZSTD(1)', comment: 'From tag' },
    { name: 'to_user', type: 'String', comment: 'user part of the To URI' },
    { name: 'to_tag', type: 'String', codec: 'ZSTD(1)', comment: "To tag ('' on an initial INVITE)" },
    { name: 'via_branch', type: 'String', codec: 'ZSTD(1)', comment: 'branch of the top Via' },
    { name: 'src_ip', type: 'LowCardinality(String)', comment: 'source address' },
    { name: 'src_port', type: 'UInt16', comment: 'source port' },
    { name: 'dst_ip', type: 'LowCardinality(String)', comment: 'destination address' },
    { name: 'dst_port', type: 'UInt16', comment: 'destination port' },
    { name: 'transport', type: 'LowCardinality(String)', comment: 'udp, tcp, tls, ws, wss, sctp' },
    { name: 'vlan', type: 'Nullable(UInt16)', comment: 'outer 802.1Q VLAN id; NULL when untagged' },
    { name: 'src_vm', type: 'LowCardinality(String)', comment: "VM that sent it ('' until attributed)" },
    { name: 'dst_vm', type: 'LowCardinality(String)', comment: "VM it was sent to ('' until attributed)" },
    { name: 'user_agent', type: 'LowCardinality(String)', comment: 'User-Agent header, else Server' },
    {
      name: 'reason_protocol',
      type: 'LowCardinality(String)',
      comment: 'Reason header protocol (Q.850, SIP)',
    },
    { name: 'reason_cause', type: 'Nullable(UInt16)', comment: 'Reason header cause (Q.850 cause value)' },
    { name: 'reason_text', type: 'String', comment: 'Reason header text' },
    { name: 'retransmission', type: 'Bool', comment: 'tshark-compatible retransmission flag' },
    ...provenance,
    {
      name: 'correlation_call_id',
      type: 'String',
      codec: 'ZSTD(1)',
      comment: "other leg's Call-ID from X-CID / X-Call-ID (B2BUA legs)",
    },
    { name: 'raw', type: 'String', codec: 'ZSTD(3)', comment: 'the whole SIP message, bytes as captured' },
  ],
  indexes: [
    { name: 'from_user_ngram', expression: 'from_user', type: 'ngrambf_v1(3, 8192, 3, 0)', granularity: 1 },
    { name: 'to_user_ngram', expression: 'to_user', type: 'ngrambf_v1(3, 8192, 3, 0)', granularity: 1 },
    {
      name: 'correlation_call_id_bloom',
      expression: 'correlation_call_id',
      type: 'bloom_filter(0.01)',
      granularity: 1,
    },
    // The calls job reads the messages stored since its last cycle: parts written then are all it scans.
    { name: 'stored_at_minmax', expression: 'stored_at', type: 'minmax', granularity: 1 },
  ],
  partitionBy: 'toDate(time)',
  primaryKey: '(toStartOfHour(time), call_id)',
  orderBy: '(toStartOfHour(time), call_id, event_id)',
  ttlExpression: 'stored_at',
  dedupWindow: true,
  cluster: { kind: 'sharded', shardingKey: 'cityHash64(call_id)' },
};

export const MEDIA_REPORTS: TableSpec = {
  name: 'media_reports',
  comment: 'RTP stream reports: every interval report and the final one of each stream',
  columns: [
    { name: 'event_id', type: 'UInt64', comment: 'hash of the report event' },
    { name: 'time', type: TIME, comment: 'report time: end of the interval, or end of the stream' },
    { name: 'kind', type: 'LowCardinality(String)', comment: 'interval or final' },
    {
      name: 'end_reason',
      type: 'LowCardinality(String)',
      comment: "final reports: bye, rtcp-bye, idle, end-of-capture, evicted; '' for interval reports",
    },
    {
      name: 'call_id',
      type: 'String',
      codec: 'ZSTD(1)',
      comment: "Call-ID of the stream's call; '' unknown",
    },
    { name: 'discovery', type: 'LowCardinality(String)', comment: 'sdp or heuristic' },
    { name: 'ip_family', type: 'UInt8', comment: '4 or 6' },
    { name: 'src_ip', type: 'LowCardinality(String)', comment: 'source address' },
    { name: 'src_port', type: 'UInt16', comment: 'source port' },
    { name: 'dst_ip', type: 'LowCardinality(String)', comment: 'destination address' },
    { name: 'dst_port', type: 'UInt16', comment: 'destination port' },
    { name: 'vlan', type: 'Nullable(UInt16)', comment: 'outer VLAN id; NULL when untagged' },
    { name: 'src_vm', type: 'LowCardinality(String)', comment: "VM sending the stream ('' unknown)" },
    { name: 'dst_vm', type: 'LowCardinality(String)', comment: "VM receiving the stream ('' unknown)" },
    { name: 'ssrc', type: 'UInt32', comment: 'RTP SSRC' },
    { name: 'previous_ssrc', type: 'Nullable(UInt32)', comment: 'SSRC this 5-tuple carried before' },
    { name: 'payload_type', type: 'UInt8', comment: 'voice payload type' },
    { name: 'codec', type: 'LowCardinality(Nullable(String))', comment: 'voice codec name' },
    { name: 'clock_rate', type: 'UInt32', comment: 'voice clock rate, Hz' },
    { name: 'payload_types', type: 'Array(UInt8)', comment: 'every payload type seen' },
    { name: 'payload_names', type: 'Array(LowCardinality(String))', comment: "Wireshark's names of them" },
    { name: 'start_time', type: TIME, comment: "stream's first packet" },
    { name: 'end_time', type: TIME, comment: "stream's latest packet" },
    {
      name: 'start_offset',
      type: 'Float64',
      comment: "seconds from the capture's first packet to the start",
    },
    { name: 'end_offset', type: 'Float64', comment: "seconds from the capture's first packet to the end" },
    { name: 'packets', type: 'UInt64', comment: 'packets received (whole stream so far)' },
    { name: 'expected', type: 'Int64', comment: 'packets expected from sequence numbers' },
    { name: 'lost', type: 'Int64', comment: 'expected - received (negative with duplicates)' },
    { name: 'loss_percent', type: 'Float64', comment: 'lost / expected, %' },
    { name: 'sequence_errors', type: 'UInt32', comment: 'sequence errors' },
    { name: 'duplicates', type: 'UInt32', comment: 'duplicate packets' },
    { name: 'out_of_order', type: 'UInt32', comment: 'late packets' },
    { name: 'wrong_timestamps', type: 'UInt32', comment: 'timestamp errors' },
    { name: 'markers', type: 'UInt32', comment: 'packets with the marker bit' },
    { name: 'min_delta_ms', type: 'Float64', comment: 'min delta between arrivals, ms' },
    { name: 'mean_delta_ms', type: 'Float64', comment: 'mean delta between arrivals, ms' },
    { name: 'max_delta_ms', type: 'Float64', comment: 'max delta between arrivals, ms' },
    { name: 'min_jitter_ms', type: 'Float64', comment: 'min RFC 3550 jitter, ms (-1: no jitter)' },
    { name: 'mean_jitter_ms', type: 'Float64', comment: 'mean jitter, ms' },
    { name: 'max_jitter_ms', type: 'Float64', comment: 'max jitter, ms' },
    { name: 'max_skew_ms', type: 'Float64', comment: 'max skew, ms' },
    { name: 'bytes', type: 'UInt64', comment: 'RTP bytes (header + payload)' },
    { name: 'bitrate_kbps', type: 'Float64', comment: 'mean bitrate, kbit/s' },
    { name: 'problem', type: 'Bool', comment: "tshark's X: a sequence or timestamp error" },
    { name: 'mos', type: 'Nullable(Float64)', comment: 'mean of the interval MOS values' },
    { name: 'min_mos', type: 'Nullable(Float64)', comment: 'lowest interval MOS' },
    { name: 'r_factor', type: 'Nullable(Float64)', comment: 'R-factor of the latest interval' },
    { name: 'loss_bursts', type: 'Array(UInt32)', comment: 'runs of 1, 2, ... 10+ consecutive lost packets' },
    {
      name: 'delay_over',
      type: 'Map(LowCardinality(String), Float64)',
      comment: "share of packets later than N ms ('50'..'300') against their expected arrival",
    },
    { name: 'has_interval', type: 'Bool', comment: 'the interval_* columns are set' },
    { name: 'interval_start', type: TIME, comment: "interval's start" },
    { name: 'interval_end', type: TIME, comment: "interval's end" },
    { name: 'interval_packets', type: 'UInt32', comment: 'packets in the interval' },
    { name: 'interval_expected', type: 'Int64', comment: 'packets expected in the interval' },
    { name: 'interval_lost', type: 'Int64', comment: 'packets lost in the interval' },
    { name: 'interval_loss_percent', type: 'Float64', comment: "interval's loss, %" },
    { name: 'interval_jitter_ms', type: 'Float64', comment: 'jitter at the end of the interval, ms' },
    { name: 'interval_max_jitter_ms', type: 'Float64', comment: 'max jitter within the interval, ms' },
    { name: 'interval_burst_r', type: 'Float64', comment: "burstiness of the interval's loss" },
    { name: 'interval_r_factor', type: 'Float64', comment: "interval's R-factor" },
    { name: 'interval_mos', type: 'Float64', comment: "interval's MOS" },
    { name: 'has_rtcp', type: 'Bool', comment: 'an rtcp_reports row with this event_id holds its RTCP' },
    ...provenance,
  ],
  indexes: [],
  partitionBy: 'toDate(time)',
  primaryKey: '(toStartOfHour(time), call_id)',
  orderBy: '(toStartOfHour(time), call_id, event_id)',
  ttlExpression: 'stored_at',
  dedupWindow: true,
  // A call's streams sit beside its SIP (local joins); streams of no known call spread by SSRC.
  cluster: { kind: 'sharded', shardingKey: "if(call_id = '', cityHash64(ssrc), cityHash64(call_id))" },
};

export const RTCP_REPORTS: TableSpec = {
  name: 'rtcp_reports',
  comment: "RTCP as the endpoints saw it: the rtcp part of each media report, and other agents' HEP type 5",
  columns: [
    { name: 'event_id', type: 'UInt64', comment: 'event carrying it (media_reports.event_id for ours)' },
    { name: 'time', type: TIME, comment: 'event time' },
    { name: 'origin', type: 'LowCardinality(String)', comment: 'media-report or hep' },
    { name: 'report_kind', type: 'LowCardinality(String)', comment: "interval or final; '' for HEP" },
    { name: 'call_id', type: 'String', codec: 'ZSTD(1)', comment: "Call-ID; '' unknown" },
    {
      name: 'src_ip',
      type: 'LowCardinality(String)',
      comment: 'source address (of the stream, or of the RTCP)',
    },
    { name: 'src_port', type: 'UInt16', comment: 'source port' },
    { name: 'dst_ip', type: 'LowCardinality(String)', comment: 'destination address' },
    { name: 'dst_port', type: 'UInt16', comment: 'destination port' },
    { name: 'ssrc', type: 'UInt32', comment: 'SSRC the figures are about' },
    { name: 'sender_reports', type: 'UInt32', comment: 'SR packets' },
    { name: 'receiver_reports', type: 'UInt32', comment: 'RR packets' },
    { name: 'fraction_lost', type: 'Nullable(Float64)', comment: 'fraction lost, 0..1 (8-bit / 256)' },
    { name: 'cumulative_lost', type: 'Nullable(Int64)', comment: 'cumulative packets lost' },
    { name: 'jitter_ms', type: 'Nullable(Float64)', comment: 'interarrival jitter, ms' },
    { name: 'round_trip_ms', type: 'Nullable(Float64)', comment: 'round trip from LSR/DLSR, ms' },
    { name: 'xr_r_factor', type: 'Nullable(Float64)', comment: 'RFC 3611 VoIP metrics R-factor' },
    { name: 'xr_mos_lq', type: 'Nullable(Float64)', comment: 'RFC 3611 MOS-LQ' },
    { name: 'xr_mos_cq', type: 'Nullable(Float64)', comment: 'RFC 3611 MOS-CQ' },
    { name: 'cname', type: 'Nullable(String)', comment: 'SDES CNAME' },
    {
      name: 'raw_json',
      type: 'String',
      codec: 'ZSTD(3)',
      comment: "HEP type 5 JSON as received; '' for ours",
    },
    ...provenance,
  ],
  indexes: [],
  partitionBy: 'toDate(time)',
  primaryKey: '(toStartOfHour(time), call_id)',
  orderBy: '(toStartOfHour(time), call_id, event_id)',
  ttlExpression: 'stored_at',
  dedupWindow: true,
  cluster: { kind: 'sharded', shardingKey: "if(call_id = '', cityHash64(ssrc), cityHash64(call_id))" },
};

export const VM_INVENTORY: TableSpec = {
  name: 'vm_inventory',
  comment: 'VM ports behind the mirrors; the newest last_seen per (hypervisor, vm_id, interface) wins',
  columns: [
    { name: 'vm_id', type: 'String', comment: 'VM id (Proxmox VMID, libvirt vm-id / UUID)' },
    { name: 'vm_name', type: 'String', comment: 'VM name' },
    { name: 'hypervisor', type: 'LowCardinality(String)', comment: 'hypervisor / capture node' },
    { name: 'bridge', type: 'LowCardinality(String)', comment: 'OVS bridge' },
    { name: 'port', type: 'String', comment: 'OVS port (tap100i0, vnet3)' },
    { name: 'interface', type: 'String', comment: 'OVS interface' },
    { name: 'mac', type: 'String', comment: "VM's MAC address (lower case)" },
    { name: 'ips', type: 'Array(String)', comment: 'addresses seen for the MAC' },
    { name: 'first_seen', type: "DateTime64(3, 'UTC')", comment: 'first time the port was seen' },
    { name: 'last_seen', type: "DateTime64(3, 'UTC')", comment: 'latest time; the row version' },
  ],
  indexes: [],
  versionColumn: 'last_seen',
  orderBy: '(hypervisor, vm_id, interface)',
  ttlExpression: 'toDateTime(last_seen)',
  dedupWindow: false,
  cluster: { kind: 'everywhere' },
};

export const CAPTURE_RUNS: TableSpec = {
  name: 'capture_runs',
  comment: 'one row per capture run (file or interface); rewritten rows replace older ones by updated_at',
  columns: [
    { name: 'run_id', type: 'String', comment: 'run id (also on every event row of the run)' },
    { name: 'updated_at', type: "DateTime64(3, 'UTC')", comment: 'when this version of the row was written' },
    { name: 'source', type: 'String', comment: 'file path or interface' },
    { name: 'format', type: 'LowCardinality(String)', comment: 'pcap, pcapng, live, hep' },
    { name: 'capture_id', type: 'UInt32', comment: 'HEP capture agent id of the events' },
    { name: 'node', type: 'LowCardinality(String)', comment: 'node name of the events' },
    { name: 'packets', type: 'UInt64', comment: 'packets read' },
    { name: 'malformed_packets', type: 'UInt64', comment: 'packets that could not be used' },
    { name: 'truncated_packets', type: 'UInt64', comment: 'packets cut by the snaplen' },
    { name: 'first_packet_time', type: "Nullable(DateTime64(3, 'UTC'))", comment: 'first packet' },
    { name: 'last_packet_time', type: "Nullable(DateTime64(3, 'UTC'))", comment: 'last packet' },
    { name: 'duration_sec', type: 'Float64', comment: 'last - first packet, s' },
    { name: 'sip_malformed', type: 'UInt64', comment: 'payloads that looked like SIP but did not parse' },
    { name: 'call_ids_capped', type: 'Bool', comment: 'more Call-IDs than counted exactly' },
    { name: 'streams_omitted', type: 'UInt64', comment: 'final stream reports beyond the summary limit' },
    {
      name: 'decode',
      type: 'String',
      codec: 'ZSTD(3)',
      comment: 'decode counters (analyze summary "decode"), JSON',
    },
    {
      name: 'rtp_stats',
      type: 'String',
      codec: 'ZSTD(3)',
      comment: 'media counters (analyze "rtp.stats"), JSON',
    },
    { name: 'elapsed_ms', type: 'Float64', comment: 'wall time the run took, ms' },
    { name: 'packets_per_second', type: 'Float64', comment: 'packets / wall time' },
    {
      name: 'limits',
      type: 'String',
      codec: 'ZSTD(3)',
      comment: 'what reached a bound (analyze summary "limits"), JSON; empty before schema version 5',
    },
    {
      name: 'failover_tracker',
      type: 'String',
      codec: 'ZSTD(3)',
      comment:
        'failover tracker counters (analyze summary "failovers.tracker"), JSON; empty before schema version 8',
    },
  ],
  indexes: [],
  versionColumn: 'updated_at',
  orderBy: '(run_id)',
  dedupWindow: true,
  cluster: { kind: 'everywhere' },
};

/** Live capture health: kernel and own counters every N seconds and at stop (migration 2). */
export const CAPTURE_HEALTH: TableSpec = {
  name: 'capture_health',
  comment: 'live capture health: pcap_stats and our counters per interface, every N seconds and at stop',
  columns: [
    { name: 'time', type: TIME, comment: 'when the sample was taken (wall clock)' },
    { name: 'interface', type: 'LowCardinality(String)', comment: 'captured interface' },
    {
      name: 'received',
      type: 'UInt64',
      comment: 'packets the kernel passed to the capture (after the filter), dropped ones included',
    },
    { name: 'dropped_kernel', type: 'UInt64', comment: 'dropped by the kernel: capture buffer full' },
    {
      name: 'dropped_interface',
      type: 'UInt64',
      comment: 'dropped by the interface or its driver (rx_dropped; may stay 0)',
    },
    { name: 'received_delta', type: 'UInt64', comment: 'received since the previous sample' },
    { name: 'dropped_kernel_delta', type: 'UInt64', comment: 'dropped_kernel since the previous sample' },
    {
      name: 'dropped_interface_delta',
      type: 'UInt64',
      comment: 'dropped_interface since the previous sample',
    },
    { name: 'packets', type: 'UInt64', comment: 'packets decoded' },
    { name: 'bytes', type: 'UInt64', comment: 'bytes decoded (captured length)' },
    { name: 'packets_delta', type: 'UInt64', comment: 'packets since the previous sample' },
    { name: 'bytes_delta', type: 'UInt64', comment: 'bytes since the previous sample' },
    {
      name: 'dropped_overload',
      type: 'UInt64',
      comment: 'read but not decoded: the decoder and its backlog were full',
    },
    { name: 'dropped_overload_delta', type: 'UInt64', comment: 'dropped_overload since the previous sample' },
    {
      name: 'dropped_events',
      type: 'UInt64',
      comment: 'events the sink (store, Kafka) could not keep up with, dropped',
    },
    { name: 'reopenings', type: 'UInt32', comment: 'times the capture was reopened after an error' },
    { name: 'link_downs', type: 'UInt32', comment: 'times the interface went down' },
    { name: 'capturing', type: 'Bool', comment: 'a capture handle was open on an interface that was up' },
    { name: 'final', type: 'Bool', comment: 'the sample taken when the capture stopped' },
    ...provenance,
  ],
  indexes: [],
  partitionBy: 'toDate(time)',
  orderBy: '(node, interface, time, run_id)',
  ttlExpression: 'stored_at',
  dedupWindow: true,
  cluster: { kind: 'sharded', shardingKey: 'cityHash64(node, interface)' },
};

/** HEP type-100 logs (Kamailio's `hlog()`, agents' own log lines), linked to their call by correlation id. */
export const HEP_LOGS: TableSpec = {
  name: 'hep_logs',
  comment: 'HEP type 100 log lines, kept with their correlation id so that a call ladder can show them',
  columns: [
    { name: 'event_id', type: 'UInt64', comment: 'hash of capture id, node, time, 5-tuple and payload' },
    { name: 'time', type: TIME, comment: 'time the agent gave the log line' },
    {
      name: 'correlation_id',
      type: 'String',
      codec: 'ZSTD(1)',
      comment: "HEP correlation id (chunk 17): the Call-ID of the call it is about; '' none",
    },
    { name: 'src_ip', type: 'LowCardinality(String)', comment: 'source address the agent gave' },
    { name: 'src_port', type: 'UInt16', comment: 'source port' },
    { name: 'dst_ip', type: 'LowCardinality(String)', comment: 'destination address' },
    { name: 'dst_port', type: 'UInt16', comment: 'destination port' },
    { name: 'text', type: 'String', codec: 'ZSTD(3)', comment: 'the log line, bytes as received' },
    ...provenance,
  ],
  indexes: [],
  partitionBy: 'toDate(time)',
  primaryKey: '(toStartOfHour(time), correlation_id)',
  orderBy: '(toStartOfHour(time), correlation_id, event_id)',
  ttlExpression: 'stored_at',
  dedupWindow: true,
  cluster: { kind: 'sharded', shardingKey: 'cityHash64(correlation_id)' },
};

/**
 * Rows the store refused for good (a value no column takes, a row the engine cannot parse), kept with
 * the reason instead of taking their batch with them. `row` is the TabSeparated line as it was sent:
 * `SELECT row FROM quarantine WHERE target_table = 'sip_messages'` piped into `INSERT INTO sip_messages FORMAT
 * TabSeparated` replays it once the cause is fixed.
 */
export const QUARANTINE: TableSpec = {
  name: 'quarantine',
  comment: 'rows the store refused for good, with the reason, to look at and replay',
  columns: [
    { name: 'quarantined_at', type: "DateTime64(3, 'UTC')", comment: 'when the row was refused' },
    { name: 'target_table', type: 'LowCardinality(String)', comment: 'the table the row was meant for' },
    { name: 'event_id', type: 'UInt64', comment: 'the event the row came from' },
    { name: 'error_code', type: 'Int32', comment: "the engine's error code (0 when none)" },
    { name: 'reason', type: 'String', comment: "the engine's error message" },
    { name: 'row', type: 'String', codec: 'ZSTD(3)', comment: 'the row as sent: a one-row Native block' },
    {
      name: 'run_id',
      type: 'LowCardinality(String)',
      comment: "capture run that wrote the row; '' for live streams",
    },
    {
      name: 'stored_at',
      type: 'DateTime',
      defaultExpression: 'now()',
      codec: 'Delta, ZSTD(1)',
      comment: 'when the store received the row: retention counts from here',
    },
  ],
  indexes: [],
  partitionBy: 'toYYYYMM(quarantined_at)',
  orderBy: '(target_table, quarantined_at, event_id)',
  ttlExpression: 'stored_at',
  dedupWindow: true,
  cluster: { kind: 'sharded', shardingKey: 'cityHash64(event_id)' },
};

const MS_TIME = "DateTime64(3, 'UTC')";

/**
 * One row per call (analyze/calls/, docs/CALLS.md), rewritten as the call progresses: the newest
 * version wins; a tombstone (is_deleted) retires a row whose key changed (a start moved earlier when a
 * late message arrived). Read with FINAL. Keyed for time ranges (start hour) and Call-ID lookups.
 */
export const CALLS: TableSpec = {
  name: 'calls',
  comment: 'one row per call (each B2BUA leg its own, linked to its edge), newest version wins',
  columns: [
    { name: 'start', type: MS_TIME, comment: 'first INVITE of the call' },
    { name: 'call_id', type: 'String', codec: 'ZSTD(1)', comment: 'Call-ID (of this leg)' },
    { name: 'version', type: 'UInt64', comment: 'µs wall time of the computation: the newest wins' },
    { name: 'is_deleted', type: 'UInt8', comment: '1: tombstone of a row whose start changed' },
    {
      name: 'digest',
      type: 'UInt64',
      comment: 'hash of the content: an unchanged call is not written again',
    },
    {
      name: 'open',
      type: 'Bool',
      comment: 'the call may still change (in progress, or answered, end not seen)',
    },
    {
      name: 'deadline',
      type: MS_TIME,
      comment: 'capture time at which an open call changes without new messages (Timer B, maximum duration)',
    },
    {
      name: 'edge_call_id',
      type: 'String',
      codec: 'ZSTD(1)',
      comment: "first leg's Call-ID (this one for an edge)",
    },
    { name: 'is_edge', type: 'Bool', comment: 'the leg where the call entered: KPIs count these' },
    {
      name: 'linked_by',
      type: 'LowCardinality(String)',
      comment: "x-cid, session-id, icid, call-id-rule, heuristic; '' for an edge",
    },
    { name: 'linked_call_ids', type: 'Array(String)', comment: 'Call-IDs of the other legs' },
    { name: 'x_cid', type: 'String', comment: 'X-CID (or kin) of the INVITE' },
    { name: 'session_id', type: 'String', comment: 'RFC 7989 Session-ID UUID of the INVITE' },
    { name: 'icid', type: 'String', comment: 'P-Charging-Vector icid-value' },
    { name: 'from_user', type: 'String', comment: 'From user' },
    { name: 'to_user', type: 'String', comment: 'To user' },
    { name: 'from_tag', type: 'String', comment: 'From tag' },
    { name: 'to_tag', type: 'String', comment: "To tag of the answered (or last) dialog; '' none" },
    { name: 'request_uri', type: 'String', comment: 'Request-URI of the first INVITE' },
    { name: 'caller_ip', type: 'LowCardinality(String)', comment: 'caller address (edge hop source)' },
    { name: 'caller_port', type: 'UInt16', comment: 'caller port' },
    { name: 'caller_vm', type: 'LowCardinality(String)', comment: "caller's VM ('' unknown)" },
    { name: 'caller_agent', type: 'LowCardinality(String)', comment: "caller's User-Agent" },
    {
      name: 'callee_ip',
      type: 'LowCardinality(String)',
      comment: 'callee address (deepest hop destination)',
    },
    { name: 'callee_port', type: 'UInt16', comment: 'callee port' },
    { name: 'callee_vm', type: 'LowCardinality(String)', comment: "callee's VM ('' unknown)" },
    { name: 'callee_agent', type: 'LowCardinality(String)', comment: "callee's User-Agent or Server" },
    { name: 'ringing', type: `Nullable(${MS_TIME})`, comment: 'first 18x' },
    { name: 'answer', type: `Nullable(${MS_TIME})`, comment: '2xx to the INVITE' },
    { name: 'end', type: MS_TIME, comment: 'BYE, CANCEL, final failure, timeout, or last message' },
    { name: 'pdd_ms', type: 'Nullable(Int64)', comment: 'start → first 18x, else → final response' },
    { name: 'setup_ms', type: 'Nullable(Int64)', comment: 'start → answer' },
    { name: 'ring_ms', type: 'Nullable(Int64)', comment: 'first 18x → answer (or end)' },
    { name: 'billsec', type: 'Float64', comment: 'answer → end, seconds' },
    { name: 'duration_sec', type: 'Float64', comment: 'start → end, seconds' },
    {
      name: 'outcome',
      type: 'LowCardinality(String)',
      comment: 'answered, busy, cancelled, rejected, redirected, failed, noAnswer, inProgress',
    },
    { name: 'failed', type: 'Bool', comment: "the NOC's failed call: outcome failed or noAnswer" },
    { name: 'final_status', type: 'Nullable(UInt16)', comment: 'final status the caller got' },
    { name: 'reason_phrase', type: 'LowCardinality(String)', comment: 'its reason phrase' },
    {
      name: 'reason_protocol',
      type: 'LowCardinality(String)',
      comment: 'Reason header protocol of the ending message',
    },
    { name: 'reason_cause', type: 'Nullable(UInt16)', comment: 'Reason header cause (Q.850 cause value)' },
    { name: 'reason_text', type: 'String', comment: 'Reason header text' },
    {
      name: 'ended_by',
      type: 'LowCardinality(String)',
      comment: 'caller, callee, network, timeout, unknown',
    },
    {
      name: 'closed_by',
      type: 'LowCardinality(String)',
      comment: "media-silence, max-duration, end-of-capture, evicted; '' when its end was seen",
    },
    { name: 'codecs_offered', type: 'Array(LowCardinality(String))', comment: "caller's SDP offer" },
    { name: 'codecs_answered', type: 'Array(LowCardinality(String))', comment: "callee's SDP answer" },
    {
      name: 'invite_transactions',
      type: 'UInt16',
      comment: "caller's INVITE transactions (407 then retry: 2)",
    },
    { name: 'auth_challenges', type: 'UInt16', comment: '401/407 challenges answered' },
    { name: 're_invites', type: 'UInt16', comment: 're-INVITEs and UPDATEs' },
    { name: 're_invites_rejected', type: 'UInt16', comment: 'of them refused' },
    { name: 'messages', type: 'UInt32', comment: 'SIP messages (each once; retransmissions included)' },
    { name: 'retransmissions', type: 'UInt32', comment: 'retransmissions' },
    { name: 'bye_answered', type: 'Bool', comment: 'answered and ended by a BYE answered 2xx' },
    { name: 'branch_hop', type: 'Array(UInt8)', comment: "per INVITE branch: its hop (0: the caller's)" },
    { name: 'branch_from', type: 'Array(String)', comment: 'per INVITE branch: where its INVITE came from' },
    { name: 'branch_to', type: 'Array(String)', comment: 'per INVITE branch: its destination' },
    { name: 'branch_id', type: 'Array(String)', comment: 'per INVITE branch: its Via branch' },
    { name: 'branch_start', type: `Array(${MS_TIME})`, comment: 'per INVITE branch: first INVITE' },
    { name: 'branch_status', type: 'Array(UInt16)', comment: 'per INVITE branch: final status (0 none)' },
    { name: 'branch_retransmissions', type: 'Array(UInt32)', comment: 'per INVITE branch: INVITE resends' },
    { name: 'streams', type: 'String', codec: 'ZSTD(3)', comment: 'media streams of the call (JSON array)' },
    { name: 'mos_min', type: 'Nullable(Float32)', comment: 'worst MOS of its streams' },
    { name: 'loss_max', type: 'Nullable(Float32)', comment: 'worst loss of its streams, percent' },
    { name: 'jitter_max', type: 'Nullable(Float32)', comment: 'worst jitter of its streams, ms' },
    { name: 'node', type: 'LowCardinality(String)', comment: 'capture node' },
    {
      name: 'run_id',
      type: 'LowCardinality(String)',
      comment: "capture run whose process computed it ('' for the ingest service's job)",
    },
    {
      name: 'stored_at',
      type: 'DateTime',
      defaultExpression: 'now()',
      codec: 'Delta, ZSTD(1)',
      comment: 'when the store received this version: retention counts from here',
    },
  ],
  indexes: [
    { name: 'call_id_bloom', expression: 'call_id', type: 'bloom_filter(0.01)', granularity: 1 },
    { name: 'edge_call_id_bloom', expression: 'edge_call_id', type: 'bloom_filter(0.01)', granularity: 1 },
    { name: 'from_user_ngram', expression: 'from_user', type: 'ngrambf_v1(3, 8192, 3, 0)', granularity: 1 },
    { name: 'to_user_ngram', expression: 'to_user', type: 'ngrambf_v1(3, 8192, 3, 0)', granularity: 1 },
  ],
  versionColumn: 'version',
  deletedColumn: 'is_deleted',
  partitionBy: 'toYYYYMM(start)',
  primaryKey: '(toStartOfHour(start), call_id)',
  orderBy: '(toStartOfHour(start), call_id, start)',
  ttlExpression: 'stored_at',
  dedupWindow: true,
  cluster: { kind: 'sharded', shardingKey: 'cityHash64(call_id)' },
};

/**
 * Every change of state of an alert (analyze/alerts/): pending, firing, resolved, and back to
 * inactive, with the value, the threshold and a few examples (Call-IDs) of what made it. The
 * dashboards show firings as annotations; `callscope alerts` lists them.
 */
export const ALERTS: TableSpec = {
  name: 'alerts',
  comment: 'alert state transitions of the built-in evaluator',
  columns: [
    { name: 'time', type: MS_TIME, comment: 'evaluation time of the transition' },
    { name: 'rule', type: 'LowCardinality(String)', comment: 'rule name' },
    { name: 'fingerprint', type: 'String', comment: 'hash of the rule and the group labels' },
    { name: 'state', type: 'LowCardinality(String)', comment: 'pending, firing, resolved, inactive' },
    { name: 'previous_state', type: 'LowCardinality(String)', comment: 'state before the transition' },
    { name: 'active_since', type: MS_TIME, comment: 'when this episode went pending' },
    {
      name: 'value',
      type: 'Nullable(Float64)',
      comment: "the KPI's value (NULL: too few attempts or no data)",
    },
    { name: 'attempts', type: 'UInt64', comment: 'what the value was computed over (calls, probes...)' },
    { name: 'threshold', type: 'Float64', comment: 'threshold crossed, or the resolve threshold' },
    { name: 'labels', type: 'Map(String, String)', comment: 'alertname, group labels, rule labels' },
    { name: 'annotations', type: 'Map(String, String)', comment: 'summary, description, links' },
    { name: 'examples', type: 'Array(String)', comment: 'a few ids of what made the value (Call-IDs)' },
    { name: 'evaluator', type: 'LowCardinality(String)', comment: 'node and command that evaluated' },
    {
      name: 'stored_at',
      type: 'DateTime',
      defaultExpression: 'now()',
      codec: 'Delta, ZSTD(1)',
      comment: 'when the store received the row: retention counts from here',
    },
  ],
  indexes: [],
  partitionBy: 'toYYYYMM(time)',
  orderBy: '(rule, fingerprint, time, state)',
  ttlExpression: 'stored_at',
  dedupWindow: true,
  cluster: { kind: 'sharded', shardingKey: 'cityHash64(fingerprint)' },
};

/**
 * One row per failover (analyze/failover/, docs/FAILOVER.md): an address (a VIP) that served SIP or RTP
 * showed up behind another MAC / VM, with the service gap the capture measured. Few rows: the sorting
 * key serves "this address's failovers" and the dashboards' time ranges alike.
 */
export const FAILOVERS: TableSpec = {
  name: 'failovers',
  comment: 'one row per failover: an address (VIP) that served SIP/RTP moved to another MAC / VM',
  columns: [
    { name: 'event_id', type: 'UInt64', comment: 'hash of the failover event' },
    {
      name: 'time',
      type: MS_TIME,
      comment: 'the move: the gratuitous ARP, or the first SIP/RTP packet behind the new MAC',
    },
    { name: 'address', type: 'LowCardinality(String)', comment: 'the address that moved (the VIP)' },
    { name: 'vlan', type: 'Nullable(UInt16)', comment: 'outer 802.1Q VLAN id; NULL when untagged' },
    { name: 'old_mac', type: 'LowCardinality(String)', comment: 'MAC the address served from before' },
    { name: 'new_mac', type: 'LowCardinality(String)', comment: 'MAC it serves from after' },
    {
      name: 'old_vm',
      type: 'LowCardinality(String)',
      comment: 'VM of the old MAC (the MAC without an inventory)',
    },
    {
      name: 'new_vm',
      type: 'LowCardinality(String)',
      comment: 'VM of the new MAC (the MAC without an inventory)',
    },
    {
      name: 'signal',
      type: 'LowCardinality(String)',
      comment: 'what showed the move: gratuitous-arp, sip-from-new-mac, rtp-from-new-mac',
    },
    {
      name: 'last_answer_before',
      type: `Nullable(${MS_TIME})`,
      comment: 'last SIP response the address sent from the old MAC; NULL: none',
    },
    {
      name: 'first_answer_after',
      type: `Nullable(${MS_TIME})`,
      comment: 'first SIP response from the new MAC at or after the move; NULL: none in time',
    },
    {
      name: 'gap_ms',
      type: 'Nullable(Int64)',
      comment: 'first_answer_after - last_answer_before: how long the address answered nothing',
    },
    ...provenance,
  ],
  indexes: [],
  partitionBy: 'toYYYYMM(time)',
  orderBy: '(address, time, event_id)',
  ttlExpression: 'stored_at',
  dedupWindow: true,
  cluster: { kind: 'sharded', shardingKey: 'cityHash64(address)' },
};

/** Applied migration versions; concurrent runners may both record one (the table collapses them). */
export const SCHEMA_MIGRATIONS: TableSpec = {
  name: 'schema_migrations',
  comment: 'schema versions applied to this database',
  columns: [
    { name: 'version', type: 'UInt32', comment: 'migration version' },
    { name: 'name', type: 'String', comment: 'what the migration does' },
    { name: 'applied_at', type: "DateTime64(3, 'UTC')", comment: 'when it was applied' },
  ],
  indexes: [],
  versionColumn: 'applied_at',
  orderBy: '(version)',
  dedupWindow: false,
  cluster: { kind: 'everywhere' },
};

export const STORE_SETTINGS: TableSpec = {
  name: 'store_settings',
  comment: "the store's own settings, e.g. how its event ids are computed; the newest set_at per key wins",
  columns: [
    { name: 'key', type: 'String', comment: "setting name ('event_id')" },
    { name: 'value', type: 'String', comment: "its value ('xxh64', 'sha256')" },
    { name: 'set_at', type: "DateTime64(3, 'UTC')", comment: 'when it was set; the row version' },
  ],
  indexes: [],
  versionColumn: 'set_at',
  orderBy: '(key)',
  dedupWindow: false,
  cluster: { kind: 'everywhere' },
};

/** The tables events and runs are written to, in creation order. */
export const DATA_TABLES: readonly TableSpec[] = [
  SIP_MESSAGES,
  MEDIA_REPORTS,
  RTCP_REPORTS,
  VM_INVENTORY,
  CAPTURE_RUNS,
  CAPTURE_HEALTH,
  HEP_LOGS,
  QUARANTINE,
  CALLS,
  ALERTS,
  FAILOVERS,
  STORE_SETTINGS,
];

export type EventTableName = 'sip_messages' | 'media_reports' | 'rtcp_reports' | 'hep_logs' | 'failovers';

/** The tables events are written to, by name, in the order a batch sends them. */
export const EVENT_TABLE_SPECS: Readonly<Record<EventTableName, TableSpec>> = {
  sip_messages: SIP_MESSAGES,
  media_reports: MEDIA_REPORTS,
  rtcp_reports: RTCP_REPORTS,
  hep_logs: HEP_LOGS,
  failovers: FAILOVERS,
};

/** Column names of a table in insert order. */
/** The columns an insert lists (those the store fills itself are left out). */
export function columnNames(table: TableSpec): string[] {
  return insertColumns(table).map((c) => c.name);
}

/** The columns the writer inserts (those the store does not fill itself), with their types. */
export function insertColumns(table: TableSpec): ColumnSpec[] {
  return table.columns.filter((c) => c.defaultExpression === undefined);
}
