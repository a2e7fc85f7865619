/**
 * The few panel shapes the dashboards are made of, over the SDK's builders: every panel gets its
 * ClickHouse query, a size, a unit and (where a NOC reads colour) thresholds.
 */

import { PanelBuilder as BarGaugePanel } from '@grafana/grafana-foundation-sdk/bargauge';
import type * as cog from '@grafana/grafana-foundation-sdk/cog';
import { ReduceDataOptionsBuilder } from '@grafana/grafana-foundation-sdk/common';
import {
  DashboardLinkBuilder,
  type Panel,
  ThresholdsConfigBuilder,
  ThresholdsMode,
} from '@grafana/grafana-foundation-sdk/dashboard';
import { PanelBuilder as StatPanel } from '@grafana/grafana-foundation-sdk/stat';
import { PanelBuilder as TablePanel } from '@grafana/grafana-foundation-sdk/table';
import { PanelBuilder as TextPanel } from '@grafana/grafana-foundation-sdk/text';
import { PanelBuilder as TimeseriesPanel } from '@grafana/grafana-foundation-sdk/timeseries';
import { ClickHouseQuery } from './clickhouse.js';

export interface Size {
  w: number;
  h: number;
}

/** Colour steps: the base colour, then [value, colour] from low to high. */
export type Steps = [string, ...Array<[number, string]>];

export const GOOD_HIGH: Steps = ['red', [0.5, 'orange'], [0.7, 'green']];

function thresholds(steps: Steps): ThresholdsConfigBuilder {
  const [base, ...rest] = steps;
  return new ThresholdsConfigBuilder()
    .mode(ThresholdsMode.Absolute)
    .steps([{ value: null, color: base }, ...rest.map(([value, color]) => ({ value, color }))]);
}

export interface PanelOptions {
  size?: Size;
  unit?: string;
  decimals?: number;
  steps?: Steps;
  description?: string;
  /** Links on every value of the panel (a table's cells: use `${__data.fields.NAME}`). */
  links?: Array<{ title: string; url: string }>;
}

function dataLinks(links: PanelOptions['links']): DashboardLinkBuilder[] {
  return (links ?? []).map((l) => new DashboardLinkBuilder(l.title).url(l.url));
}

/** One number (reduced to its last value). */
export function stat(title: string, sql: string, o: PanelOptions = {}): cog.Builder<Panel> {
  const p = new StatPanel()
    .title(title)
    .withTarget(new ClickHouseQuery(sql))
    .reduceOptions(new ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false))
    .height(o.size?.h ?? 4)
    .span(o.size?.w ?? 4)
    .unit(o.unit ?? 'none');
  if (o.decimals !== undefined) p.decimals(o.decimals);
  if (o.steps) p.thresholds(thresholds(o.steps));
  if (o.description) p.description(o.description);
  return p;
}

export function timeseries(title: string, sql: string, o: PanelOptions = {}): cog.Builder<Panel> {
  const p = new TimeseriesPanel()
    .title(title)
    .withTarget(new ClickHouseQuery(sql, 'timeseries'))
    .height(o.size?.h ?? 8)
    .span(o.size?.w ?? 12)
    .unit(o.unit ?? 'none')
    .fillOpacity(10)
    .lineWidth(1);
  if (o.decimals !== undefined) p.decimals(o.decimals);
  if (o.steps) p.thresholds(thresholds(o.steps));
  if (o.description) p.description(o.description);
  return p;
}

export function table(title: string, sql: string, o: PanelOptions = {}): cog.Builder<Panel> {
  const p = new TablePanel()
    .title(title)
    .withTarget(new ClickHouseQuery(sql))
    .height(o.size?.h ?? 8)
    .span(o.size?.w ?? 12)
    .filterable(true);
  if (o.unit) p.unit(o.unit);
  if (o.decimals !== undefined) p.decimals(o.decimals);
  if (o.steps) p.thresholds(thresholds(o.steps));
  if (o.description) p.description(o.description);
  if (o.links) p.dataLinks(dataLinks(o.links));
  return p;
}

/** Horizontal bars of a table's numbers (top statuses, causes, bursts). */
export function bars(title: string, sql: string, o: PanelOptions = {}): cog.Builder<Panel> {
  const p = new BarGaugePanel()
    .title(title)
    .withTarget(new ClickHouseQuery(sql))
    .reduceOptions(new ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(true))
    .height(o.size?.h ?? 8)
    .span(o.size?.w ?? 8)
    .unit(o.unit ?? 'none');
  if (o.steps) p.thresholds(thresholds(o.steps));
  if (o.description) p.description(o.description);
  return p;
}

export function note(title: string, markdown: string, size: Size = { w: 24, h: 3 }): cog.Builder<Panel> {
  return new TextPanel().title(title).content(markdown).height(size.h).span(size.w);
}
