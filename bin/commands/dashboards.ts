/** `callscope dashboards`: the Grafana provisioning tree (datasource, dashboards, ladder panel). */
import { cpSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { LADDER_PANEL_ID } from '../../dashboards/ladder.js';
import { writeProvisioning } from '../../dashboards/provisioning.js';
import { type Command, parseCommand } from '../command.js';
import { UsageError } from '../config.js';
import { EXIT_OK } from '../errors.js';
import { COMMON, COMMON_HELP, EXIT_CODES_HELP } from '../flags.js';

/** Where `npm run build` puts the ladder panel plugin (module.js, plugin.json). */
const BUILT_PANEL = new URL('../../ladder-panel/', import.meta.url);

export const dashboardsCommand: Command = {
  name: 'dashboards',
  summary: 'write the Grafana provisioning: datasource, dashboards and the ladder panel',
  help: `Usage: callscope dashboards --out DIR [--json]

Write Grafana's provisioning tree into DIR (docs/DASHBOARDS.md):
  DIR/provisioning/datasources/callscope.yaml   the ClickHouse datasource; its server and password come
                                                from Grafana's environment: CLICKHOUSE_HOST, CLICKHOUSE_PORT,
                                                CLICKHOUSE_USER, CLICKHOUSE_PASSWORD
  DIR/provisioning/dashboards/callscope.yaml    the file provider (dashboards from /var/lib/grafana/dashboards)
  DIR/dashboards/<Folder>/<uid>.json            the dashboards: NOC, Calls and Capture folders
  DIR/plugins/${LADDER_PANEL_ID}/               the ladder panel (when built), an unsigned plugin: allow it
                                                with GF_PLUGINS_ALLOW_LOADING_UNSIGNED_PLUGINS=${LADDER_PANEL_ID}
The build writes the same tree (without the plugin) to dashboards/grafana/, which the Grafana image carries.

  --out DIR              where to write (required)

${COMMON_HELP}
${EXIT_CODES_HELP}`,

  async run(argv) {
    const parsed = parseCommand(this, argv, { ...COMMON, out: { type: 'string', short: 'o' } });
    if (parsed === null) return EXIT_OK;
    const { values, settings } = parsed;
    const out = settings.string('out');
    if (!out) throw new UsageError('dashboards needs --out DIR');
    const files = writeProvisioning(out);
    const plugin = join(out, 'plugins', LADDER_PANEL_ID);
    const built = existsSync(new URL('module.js', BUILT_PANEL));
    if (built) {
      cpSync(BUILT_PANEL, plugin, { recursive: true });
      files.push(`plugins/${LADDER_PANEL_ID}/`);
    }
    process.stdout.write(
      values.json
        ? `${JSON.stringify({ out, files, ladderPanel: built }, null, 2)}\n`
        : `wrote ${files.length} files to ${out}${built ? '' : ' (the ladder panel is not built: npm run build)'}\n`,
    );
    return EXIT_OK;
  },
};
