#!/usr/bin/env node
/**
 * Builds the ladder panel as Grafana loads a panel plugin: `module.js` in AMD form with plugin.json and
 * img/ beside it (dist/ladder-panel/ by default). React, react/jsx-runtime and @grafana/* are not
 * bundled: Grafana hands its own copies to the module's `define` factory at run time.
 *
 * esbuild has no AMD output, so the bundle is built as CommonJS with those packages external, and
 * wrapped in `define([...], factory)` here, each `require(name)` answered with the factory's argument
 * for that name. The list of names comes from the bundle itself (esbuild's metafile) and must be
 * among the modules Grafana shares with plugins. Output is deterministic (no timestamps).
 *
 *   node dashboards/ladder-panel/build.mjs [--out DIR] [--no-typecheck]
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..', '..');

/** Modules Grafana 12 provides to plugins (its SystemJS shared dependencies) that this panel may use. */
const PROVIDED = [
  '@grafana/data',
  '@grafana/runtime',
  '@grafana/ui',
  'react',
  'react-dom',
  'react/jsx-runtime',
];

function parseArgs(argv) {
  const options = { out: join(ROOT, 'dist', 'ladder-panel'), typecheck: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--out' && argv[i + 1] !== undefined) options.out = resolve(argv[++i]);
    else if (a === '--no-typecheck') options.typecheck = false;
    else throw new Error(`build.mjs: unknown argument ${a} (use --out DIR, --no-typecheck)`);
  }
  return options;
}

function typecheck() {
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', join(HERE, 'tsconfig.json')], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('build.mjs: the panel does not typecheck');
}

/** The AMD module around a CommonJS bundle whose only requires are `externals`. */
function amd(code, externals, version) {
  const args = externals.map((_, i) => `__callscope_dep${i}`);
  const table = externals.map((name, i) => `${JSON.stringify(name)}: ${args[i]}`).join(', ');
  return (
    `/* callscope-ladder-panel ${version}: Grafana panel plugin (AMD), built by dashboards/ladder-panel/build.mjs */\n` +
    `define(${JSON.stringify(externals)}, function (${args.join(', ')}) {\n` +
    `  var __callscope_deps = { ${table} };\n` +
    '  var module = { exports: {} };\n' +
    '  var require = function (name) {\n' +
    '    if (Object.prototype.hasOwnProperty.call(__callscope_deps, name)) return __callscope_deps[name];\n' +
    '    throw new Error("callscope-ladder-panel: module " + name + " is not provided");\n' +
    '  };\n' +
    '  (function (require, module, exports) {\n' +
    code +
    '  })(require, module, module.exports);\n' +
    '  return module.exports;\n' +
    '});\n'
  );
}

export async function buildPanel(options = {}) {
  const out = options.out ?? join(ROOT, 'dist', 'ladder-panel');
  if (options.typecheck !== false) typecheck();
  const plugin = JSON.parse(readFileSync(join(HERE, 'plugin.json'), 'utf8'));
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: [join(HERE, 'src', 'module.tsx')],
    bundle: true,
    format: 'cjs',
    platform: 'browser',
    target: 'es2020',
    jsx: 'automatic',
    external: PROVIDED,
    define: { 'process.env.NODE_ENV': '"production"' },
    legalComments: 'none',
    charset: 'utf8',
    metafile: true,
    write: false,
    logLevel: 'warning',
  });
  const file = result.outputFiles[0];
  if (file === undefined) throw new Error('build.mjs: esbuild wrote nothing');
  const externals = [
    ...new Set(
      Object.values(result.metafile.outputs)
        .flatMap((o) => o.imports)
        .filter((i) => i.external)
        .map((i) => i.path),
    ),
  ].sort();
  const unknown = externals.filter((name) => !PROVIDED.includes(name));
  if (unknown.length > 0) throw new Error(`build.mjs: Grafana does not provide ${unknown.join(', ')}`);
  // Anything else the bundle requires would fail at run time in Grafana: esbuild bundled it or not.
  const required = [...file.text.matchAll(/\brequire\("([^"]+)"\)/g)].map((m) => m[1]);
  const stray = required.filter((name) => !externals.includes(name));
  if (stray.length > 0) throw new Error(`build.mjs: unmapped require of ${[...new Set(stray)].join(', ')}`);

  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'module.js'), amd(file.text, externals, plugin.info.version));
  cpSync(join(HERE, 'plugin.json'), join(out, 'plugin.json'));
  cpSync(join(HERE, 'README.md'), join(out, 'README.md'));
  cpSync(join(HERE, 'img'), join(out, 'img'), { recursive: true });
  return { out, externals, bytes: Buffer.byteLength(file.text) };
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const built = await buildPanel(parseArgs(process.argv.slice(2)));
    process.stdout.write(
      `ladder panel: ${relative(process.cwd(), join(built.out, 'module.js'))} (${built.bytes} bytes; provided by Grafana: ${built.externals.join(', ')})\n`,
    );
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  }
}
