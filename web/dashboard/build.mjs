// Bundles the dashboard into one directory: dashboard.js and dashboard.css (plus the licence
// notes of the bundled packages). Run by the service's build.rs as `node build.mjs <outdir>`.
import * as esbuild from 'esbuild';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.resolve(process.argv[2] ?? path.join(here, 'dist'));

await esbuild.build({
  entryPoints: { dashboard: 'src/main.jsx' },
  bundle: true,
  minify: true,
  legalComments: 'linked',
  target: 'es2022',
  format: 'esm',
  jsx: 'automatic',
  logLevel: 'warning',
  absWorkingDir: here,
  outdir,
  define: { 'process.env.NODE_ENV': '"production"' },
});
