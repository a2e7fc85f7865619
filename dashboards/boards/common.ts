/** What every dashboard shares: the time picker, the tags, the link to call detail. */
import {
  DashboardBuilder,
  DashboardCursorSync,
  DashboardLinkBuilder,
  DashboardLinkType,
} from '@grafana/grafana-foundation-sdk/dashboard';

/** The uids the dashboards link each other by. */
export const UIDS = {
  overview: 'callscope-noc-overview',
  search: 'callscope-call-search',
  detail: 'callscope-call-detail',
  media: 'callscope-media-quality',
  vmLoad: 'callscope-vm-load',
  peers: 'callscope-peers',
  health: 'callscope-capture-health',
} as const;

/** A table cell's link to the call detail of the row's `call_id` field (percent-encoded: Call-IDs hold `#`, `&`). */
export const CALL_DETAIL_LINK = {
  title: 'Call detail',
  url: `/d/${UIDS.detail}/call-detail?var-call_id=\${__data.fields.call_id:percentencode}&\${__url_time_range}`,
};

export function dashboard(uid: string, title: string, description: string): DashboardBuilder {
  return new DashboardBuilder(title)
    .uid(uid)
    .description(description)
    .tags(['callscope'])
    .editable()
    .tooltip(DashboardCursorSync.Crosshair)
    .time({ from: 'now-6h', to: 'now' })
    .refresh('1m')
    .timezone('browser')
    .link(
      new DashboardLinkBuilder('callscope')
        .type(DashboardLinkType.Dashboards)
        .tags(['callscope'])
        .asDropdown(true)
        .includeVars(true)
        .keepTime(true),
    );
}
