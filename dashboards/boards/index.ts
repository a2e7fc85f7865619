/** Every dashboard, in the folder it is provisioned into. */
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import { callDetail } from './call-detail.js';
import { callSearch } from './call-search.js';
import { captureHealth } from './capture-health.js';
import { mediaQuality } from './media.js';
import { nocOverview } from './noc-overview.js';
import { peers } from './peers.js';
import { vmLoad } from './vm-load.js';

export interface ProvisionedDashboard {
  folder: 'NOC' | 'Calls' | 'Capture';
  dashboard: Dashboard;
}

export function allDashboards(): ProvisionedDashboard[] {
  return [
    { folder: 'NOC', dashboard: nocOverview() },
    { folder: 'NOC', dashboard: vmLoad() },
    { folder: 'NOC', dashboard: peers() },
    { folder: 'Calls', dashboard: callSearch() },
    { folder: 'Calls', dashboard: callDetail() },
    { folder: 'Calls', dashboard: mediaQuality() },
    { folder: 'Capture', dashboard: captureHealth() },
  ];
}
