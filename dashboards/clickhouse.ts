/**
 * The ClickHouse datasource as the dashboards use it: its reference, and its query model (the SDK has
 * no builder for it; CONTEXT §4 gives the JSON: editorType 'sql', rawSql, format 0 time series /
 * 1 table).
 */
import type * as cog from '@grafana/grafana-foundation-sdk/cog';

/** The provisioned datasource (provisioning.ts writes it with this uid). */
export const DATASOURCE = { type: 'grafana-clickhouse-datasource', uid: 'callscope-clickhouse' } as const;

export type QueryFormat = 'timeseries' | 'table';

/** One panel query as the plugin stores it. */
export interface ClickHouseTarget {
  refId: string;
  datasource: { type: string; uid: string };
  editorType: 'sql';
  rawSql: string;
  format: 0 | 1;
  queryType: QueryFormat;
}

export class ClickHouseQuery implements cog.Builder<cog.Dataquery> {
  constructor(
    private readonly rawSql: string,
    private readonly format: QueryFormat = 'table',
    private readonly refId = 'A',
  ) {}

  build(): cog.Dataquery {
    const target: ClickHouseTarget = {
      refId: this.refId,
      datasource: { ...DATASOURCE },
      editorType: 'sql',
      rawSql: this.rawSql.trim(),
      format: this.format === 'timeseries' ? 0 : 1,
      queryType: this.format,
    };
    return { ...target, _implementsDataqueryVariant() {} };
  }
}

/** Wraps targets built elsewhere (the ladder panel's) as SDK queries. */
export function asQuery(target: ClickHouseTarget): cog.Builder<cog.Dataquery> {
  return { build: () => ({ ...target, _implementsDataqueryVariant() {} }) };
}
