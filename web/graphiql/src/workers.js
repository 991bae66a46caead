// Monaco's editor workers, bundled by build.mjs beside this script and started from the same
// origin (the page's CSP allows workers from 'self' only). Must run before GraphiQL loads Monaco.
globalThis.MonacoEnvironment = {
  getWorker(_workerId, label) {
    const file =
      label === 'json' ? 'json.worker.js' : label === 'graphql' ? 'graphql.worker.js' : 'editor.worker.js';
    return new Worker(new URL(`./${file}`, import.meta.url));
  },
};
