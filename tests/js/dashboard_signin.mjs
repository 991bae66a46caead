// Signing in to the dashboard, in Debian's headless Chromium with every request to another
// host refused, on a service whose anonymous callers have no role: the page asks for an API
// key and shows nothing else; with a viewer's key it lists the items (the key went out on HTTP
// as `Authorization` and in the WebSocket's connection_init, which the service refuses
// without it) and offers no command; with an operator's key the commands appear and an
// adjustment made with them names the key as its actor; a refused key asks again. The key is
// in sessionStorage only.
// Usage: node dashboard_signin.mjs <service url> <admin key> <viewer key> <operator key>
import { chromium } from 'playwright-core';

const [base, adminKey, viewerKey, operatorKey] = process.argv.slice(2);
if (!operatorKey) {
  console.error('usage: node dashboard_signin.mjs <service url> <admin key> <viewer key> <operator key>');
  process.exit(2);
}
const service = new URL(base);
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const TIMEOUT = 20_000;

let browser;
const problems = [];
function fail(message) {
  console.error(`dashboard_signin: FAIL: ${message}`);
  process.exitCode = 1;
  throw new Error(message);
}
const step = (message) => console.log(`dashboard_signin: ${message}`);

async function gql(query, variables = {}) {
  const response = await fetch(new URL('/graphql', service), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${adminKey}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors) fail(`API: ${JSON.stringify(body.errors)}`);
  return body.data;
}

async function main() {
  const { warehouseCreate } = await gql(
    `mutation { warehouseCreate(input: {name: "Sign-in test", code: "SIGNIN"}) { warehouse { id } userErrors { message } } }`,
  );
  const warehouseId = warehouseCreate.warehouse.id;
  const ids = {};
  for (const sku of ['S-1', 'S-2']) {
    const { inventoryItemCreate } = await gql(
      `mutation($w: ID!, $sku: String!) { inventoryItemCreate(input: {warehouseId: $w, sku: $sku, productId: "P",
         initialQuantity: 20, reorderThreshold: 5}) { inventoryItem { id } userErrors { message } } }`,
      { w: warehouseId, sku },
    );
    ids[sku] = inventoryItemCreate.inventoryItem.id;
  }

  browser = await chromium.launch({ executablePath, headless: true });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const foreign = [];
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.host === service.host) return route.continue();
    foreign.push(url.href);
    return route.abort('blockedbyclient');
  });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  const sentKeys = { http: new Set(), socket: new Set() };
  page.on('request', (request) => {
    const authorization = request.headers().authorization;
    if (new URL(request.url()).pathname === '/graphql' && authorization) sentKeys.http.add(authorization);
  });
  page.on('websocket', (ws) =>
    ws.on('framesent', (frame) => {
      const text = typeof frame.payload === 'string' ? frame.payload : '';
      if (text.includes('"connection_init"')) {
        const authorization = JSON.parse(text).payload?.authorization;
        if (authorization) sentKeys.socket.add(authorization);
      }
    }),
  );

  // --- anonymous: asked for a key, shown nothing ---
  await page.goto(new URL(`/#/warehouses/${warehouseId}`, service).href);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  if (await page.locator('table.items tbody tr').count()) fail('rows shown without credentials');
  step('without credentials the page asks for an API key');

  // --- a viewer: items listed, live feed up, no commands ---
  await page.getByLabel('API key').fill(viewerKey);
  await page.getByLabel('API key').press('Enter');
  await page.waitForFunction(() => document.querySelectorAll('table.items tbody tr').length === 2);
  await page.locator('[data-feed="connected"]').waitFor();
  await page.getByText('dash-viewer · viewer').waitFor();
  if (!sentKeys.http.has(`Bearer ${viewerKey}`)) fail('the key was not sent on HTTP');
  if (!sentKeys.socket.has(`Bearer ${viewerKey}`)) fail('the key was not sent in connection_init');
  const stored = await page.evaluate(() => ({ session: Object.keys(sessionStorage).length, local: Object.keys(localStorage).length }));
  if (stored.session !== 1 || stored.local !== 0) fail(`storage: ${JSON.stringify(stored)}`);
  await page.getByRole('link', { name: 'S-1', exact: true }).click();
  await page.getByRole('heading', { name: /S-1/ }).waitFor();
  await page.getByRole('heading', { name: 'Event trail' }).waitFor();
  if (await page.getByRole('heading', { name: 'Adjust stock' }).count()) fail('a viewer is offered commands');
  step('a viewer key: the key goes on HTTP and in connection_init, items are listed, no command is offered');

  // --- an operator: commands offered, and its adjustment names it ---
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.getByLabel('API key').fill(operatorKey);
  await page.getByRole('button', { name: 'Sign in' }).last().click();
  await page.getByText('dash-operator · operator').waitFor();
  await page.getByRole('heading', { name: 'Adjust stock' }).waitFor();
  await page.getByLabel('Delta').fill('-3');
  await page.getByLabel('Reason', { exact: true }).first().selectOption('DAMAGED');
  await page.getByRole('button', { name: 'Adjust' }).click();
  await page.locator('[data-figure="onHand"]').getByText('17', { exact: true }).waitFor();
  const { events } = await gql(`query($i: ID!) { events(aggregateId: $i, last: 1) { edges { node { eventType metadata { actor } } } } }`, {
    i: ids['S-1'],
  });
  const last = events.edges[0].node;
  if (last.eventType !== 'StockLevelChanged' || last.metadata.actor !== 'dash-operator') fail(`last event: ${JSON.stringify(last)}`);
  step('an operator key: the commands appear and its adjustment is stored with it as the actor');

  // --- a key the service refuses: asked again ---
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('API key').fill(`inv_${'0'.repeat(64)}`);
  await page.getByRole('button', { name: 'Sign in' }).last().click();
  await page.getByText('The service refused that key').waitFor();
  step('a refused key: the page asks again');

  if (foreign.length) fail(`requests to other hosts: ${foreign.join(', ')}`);
  if (problems.length) fail(`errors in the page: ${problems.join(' | ')}`);
  step('ok');
}

try {
  await main();
} catch (e) {
  if (!process.exitCode) console.error(`dashboard_signin: FAIL: ${e.stack ?? e}`);
  process.exitCode = 1;
} finally {
  await browser?.close();
}
