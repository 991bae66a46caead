// The dashboard at / as a person uses it, in Debian's headless Chromium with every request to
// another host refused. Seeds a warehouse of 100 items through the API, then: the table lists
// them (load time measured); a change made through the API by another client shows in the open
// page without a reload (time measured); a low-stock alert that client causes appears as a
// notification and in the alerts list; filters, sorting and the item page work from the
// keyboard; an adjustment made from the page lands in the store (its event is there) and a bad
// one shows its userErrors entry next to the field it names; allocations are created,
// confirmed, fulfilled and cancelled from the page; at 360 px nothing spills sideways; after
// the service is killed and started again (asked of tests/dashboard.rs with `@kill` and
// `@start`) the page says it is away, reconnects and shows later changes.
// Screenshots in target/dashboard-screenshots/. Usage: node dashboard.mjs <service url>
import { chromium } from 'playwright-core';
import { mkdir } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const base = process.argv[2];
if (!base) {
  console.error('usage: node dashboard.mjs <service url, e.g. http://127.0.0.1:8080>');
  process.exit(2);
}
const service = new URL(base);
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const shots = fileURLToPath(new URL('../../target/dashboard-screenshots/', import.meta.url));
const TIMEOUT = 20_000;

let browser;
let page;
const problems = [];
let restarting = false;
function fail(message) {
  console.error(`dashboard: FAIL: ${message}`);
  process.exitCode = 1;
  throw new Error(message);
}
const step = (message) => console.log(`dashboard: ${message}`);
const figure = (message) => console.log(`dashboard: FIGURE ${message}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The test on the other end of stdin answers `@kill` with "killed" and `@start` with "started".
const answers = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function ask(request, answer) {
  console.log(request);
  const { value } = await answers.next();
  if (value?.trim() !== answer) fail(`asked ${request}, got ${value}`);
}

async function gql(query, variables = {}) {
  const response = await fetch(new URL('/graphql', service), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors) fail(`API: ${JSON.stringify(body.errors)}`);
  return body.data;
}

async function adjust(itemId, delta, reason) {
  const { inventoryAdjust } = await gql(
    `mutation($i: ID!, $d: Int!, $r: AdjustmentReason!) { inventoryAdjust(input: {itemId: $i, delta: $d, reason: $r}) {
       inventoryItem { onHand available lowStock } userErrors { code message } } }`,
    { i: itemId, d: delta, r: reason },
  );
  if (inventoryAdjust.userErrors.length) fail(JSON.stringify(inventoryAdjust.userErrors));
  return inventoryAdjust.inventoryItem;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The text of a row's cell under the column labelled `label`. */
async function cell(sku, label) {
  return page.evaluate(
    ({ sku, label }) => {
      const headers = [...document.querySelectorAll('table.items thead th')].map((th) => th.textContent.replace(/[▲▼]/g, '').trim());
      const row = document.querySelector(`table.items tbody tr[data-sku="${sku}"]`);
      return row?.children[headers.indexOf(label)]?.textContent.trim() ?? null;
    },
    { sku, label },
  );
}

/** Waits until the row of `sku` shows `value` under `label`; returns when (performance.now in Node). */
async function untilCell(sku, label, value, timeout = TIMEOUT) {
  await page.waitForFunction(
    ({ sku, label, value }) => {
      const headers = [...document.querySelectorAll('table.items thead th')].map((th) => th.textContent.replace(/[▲▼]/g, '').trim());
      const row = document.querySelector(`table.items tbody tr[data-sku="${sku}"]`);
      return row?.children[headers.indexOf(label)]?.textContent.trim() === value;
    },
    { sku, label, value },
    { polling: 'raf', timeout },
  );
  return performance.now();
}

async function main() {
  // --- seed: one warehouse of 100 items, 50 on hand each, reorder at 10 ---
  const suffix = Date.now().toString(36).toUpperCase();
  const { warehouseCreate } = await gql(
    `mutation($code: String!) { warehouseCreate(input: {name: "Dashboard test", code: $code}) { warehouse { id code } userErrors { message } } }`,
    { code: `DT${suffix}` },
  );
  const warehouseId = warehouseCreate.warehouse.id;
  const skus = Array.from({ length: 100 }, (_, i) => `D-${String(i).padStart(3, '0')}`);
  const ids = {};
  for (let i = 0; i < skus.length; i += 10) {
    await Promise.all(
      skus.slice(i, i + 10).map(async (sku) => {
        const { inventoryItemCreate } = await gql(
          `mutation($w: ID!, $sku: String!) { inventoryItemCreate(input: {warehouseId: $w, sku: $sku, productId: "P",
             initialQuantity: 50, reorderThreshold: 10, reorderQuantity: 40}) { inventoryItem { id } userErrors { message } } }`,
          { w: warehouseId, sku },
        );
        if (inventoryItemCreate.userErrors.length) fail(JSON.stringify(inventoryItemCreate.userErrors));
        ids[sku] = inventoryItemCreate.inventoryItem.id;
      }),
    );
  }
  step(`seeded warehouse ${warehouseCreate.warehouse.code} with ${skus.length} items`);

  // --- a browser that may reach the service and nothing else ---
  browser = await chromium.launch({ executablePath, headless: true });
  const context = await browser.newContext({ viewport: { width: 1920, height: 1080 } });
  const foreign = [];
  let served = 0;
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.host === service.host) {
      served += 1;
      return route.continue();
    }
    foreign.push(url.href);
    return route.abort('blockedbyclient');
  });
  page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    // While the service is down, Chromium logs the refused connections: expected then only.
    if (m.type() === 'error' && !restarting) problems.push(`console error: ${m.text()}`);
  });
  const subscribed = [];
  page.on('websocket', (ws) => {
    ws.on('framesent', (frame) => {
      const text = typeof frame.payload === 'string' ? frame.payload : '';
      if (text.includes('"subscribe"')) subscribed.push(text);
    });
  });

  // --- the table lists the seeded items ---
  const loadStart = performance.now();
  const response = await page.goto(new URL(`/#/warehouses/${warehouseId}`, service).href);
  if (!response || response.status() !== 200) fail(`page answered ${response?.status()}`);
  const csp = response.headers()['content-security-policy'] ?? '';
  if (!csp.includes("script-src 'self'") || csp.includes('unsafe')) fail(`CSP: ${csp}`);
  await page.waitForFunction(() => document.querySelectorAll('table.items tbody tr').length === 100, null, { polling: 'raf' });
  const loadMs = performance.now() - loadStart;
  figure(`page load to a table of 100 items: ${loadMs.toFixed(0)} ms`);
  for (const sku of ['D-000', 'D-042', 'D-099']) {
    if ((await cell(sku, 'On hand')) !== '50') fail(`${sku} does not show 50 on hand: ${await cell(sku, 'On hand')}`);
  }
  const align = await page.evaluate(() => getComputedStyle(document.querySelector('table.items tbody td.num')).textAlign);
  if (align !== 'right') fail(`numbers are aligned ${align}`);
  step('the table lists the 100 seeded items, numbers right-aligned');

  // --- live: a change made through the API by another client shows without a reload ---
  await page.locator('[data-feed="connected"]').waitFor();
  const deadline = Date.now() + TIMEOUT;
  while (!subscribed.some((s) => s.includes('inventoryItemChanged'))) {
    if (Date.now() > deadline) fail('the page never subscribed to inventoryItemChanged');
    await sleep(20);
  }
  await sleep(300); // the service registers the subscriber right after the subscribe message
  await page.evaluate(() => {
    window.__sameDocument = true;
  });
  const updates = [];
  for (const [n, sku] of ['D-001', 'D-002', 'D-003', 'D-004', 'D-005'].entries()) {
    const sent = performance.now();
    const item = await adjust(ids[sku], 10 + n, 'RECEIVED');
    const shown = await untilCell(sku, 'On hand', String(item.onHand));
    updates.push(shown - sent);
  }
  if (!(await page.evaluate(() => window.__sameDocument === true))) fail('the page reloaded');
  figure(`mutation (through the API) to the row updated: median ${median(updates).toFixed(0)} ms, each ${updates.map((u) => u.toFixed(0)).join(', ')} ms`);
  step('changes made through the API show in the open page, no reload');

  // --- a low-stock alert another client causes appears, as a notification and in the list ---
  const low = await adjust(ids['D-011'], -45, 'SOLD');
  if (!low.lowStock) fail('the adjustment did not make D-011 low');
  await page.locator('.alerts li[data-sku="D-011"]').waitFor();
  await page.getByRole('alert').filter({ hasText: 'D-011' }).waitFor();
  await untilCell('D-011', 'Stock', 'Low');
  step('the low-stock alert shows as a notification, in the alerts list and as the row badge');
  await mkdir(shots, { recursive: true });
  await page.screenshot({ path: `${shots}/desktop-items.png` });

  // --- filters and sorting ---
  const rows = () => page.locator('table.items tbody tr').count();
  await page.getByLabel('Low stock only').check();
  await page.waitForFunction(() => document.querySelectorAll('table.items tbody tr').length === 1);
  if ((await page.locator('table.items tbody tr').first().getAttribute('data-sku')) !== 'D-011') fail('low stock only shows the wrong rows');
  await page.getByLabel('Low stock only').uncheck();
  await page.waitForFunction(() => document.querySelectorAll('table.items tbody tr').length === 100);
  await page.getByRole('searchbox', { name: 'SKU' }).fill('d-04');
  if ((await rows()) !== 10) fail(`SKU search d-04 shows ${await rows()} rows`);
  await page.getByRole('searchbox', { name: 'SKU' }).fill('');
  const onHand = page.getByRole('button', { name: /^On hand/ });
  await onHand.focus();
  await page.keyboard.press('Enter'); // ascending
  await page.keyboard.press('Enter'); // descending
  if ((await page.locator('table.items tbody tr').first().getAttribute('data-sku')) !== 'D-005') fail('sorting by on hand, descending, does not put D-005 (64) first');
  if ((await page.locator('th[aria-sort="descending"]').count()) !== 1) fail('no aria-sort on the sorted column');
  step('low stock only, SKU search and sorting (from the keyboard) work');

  // --- the item page, opened from the keyboard ---
  await page.getByRole('link', { name: 'D-011', exact: true }).first().focus();
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: /D-011/ }).waitFor();
  await page.locator('svg.chart').first().waitFor();
  await page.locator('.events li[data-event-type="StockLevelChanged"]').first().waitFor();
  step('the item page shows its charts and event trail');

  // --- an adjustment made from the page lands in the store ---
  const eventsBefore = (await gql(`query($i: ID!) { events(aggregateId: $i) { totalCount } }`, { i: ids['D-011'] })).events.totalCount;
  await page.getByLabel('Delta').fill('5');
  await page.getByLabel('Reason', { exact: true }).first().selectOption('RECEIVED');
  await page.getByLabel('Reference').fill('dashboard test');
  await page.getByLabel('Delta').press('Enter');
  await page.locator('[data-figure="onHand"]').getByText('10', { exact: true }).waitFor();
  const { events } = await gql(
    `query($i: ID!) { events(aggregateId: $i, last: 1) { totalCount edges { node { eventType data metadata { actor } } } } }`,
    { i: ids['D-011'] },
  );
  const last = events.edges[0].node;
  if (events.totalCount !== eventsBefore + 1 || last.eventType !== 'StockLevelChanged')
    fail(`the store has no new StockLevelChanged: ${JSON.stringify(events)}`);
  const data = JSON.stringify(last.data);
  if (!data.includes('dashboard test') || !/"delta":5\b/.test(data)) fail(`the stored event is not the page's: ${data}`);
  step(`the adjustment from the page is in the store: ${last.eventType} ${data}`);

  // --- a bad one shows its userErrors entry next to the field it names, and changes nothing ---
  await page.getByLabel('Delta').fill('0');
  await page.getByRole('button', { name: 'Adjust' }).click();
  const error = page.locator('[data-field="delta"] .field-errors li');
  await error.waitFor();
  const expected = await gql(
    `mutation($i: ID!) { inventoryAdjust(input: {itemId: $i, delta: 0, reason: RECEIVED}) { userErrors { field message code } } }`,
    { i: ids['D-011'] },
  );
  const userError = expected.inventoryAdjust.userErrors[0];
  if (userError?.field?.join('.') !== 'input.delta') fail(`the API's error names ${userError?.field}`);
  if ((await error.innerText()).trim() !== userError.message || (await error.getAttribute('data-code')) !== userError.code)
    fail(`the page shows "${await error.innerText()}", the API says "${userError.message}"`);
  const describedBy = await page.getByLabel('Delta').getAttribute('aria-describedby');
  if (!describedBy || !(await page.locator(`[id="${describedBy}"]`).count())) fail('the error is not tied to the field (aria-describedby)');
  const eventsAfter = (await gql(`query($i: ID!) { events(aggregateId: $i) { totalCount } }`, { i: ids['D-011'] })).events.totalCount;
  if (eventsAfter !== eventsBefore + 1) fail('the bad adjustment changed the store');
  step(`a bad adjustment shows "${userError.message}" next to Delta`);

  // --- allocations: allocate, confirm, fulfil; allocate, cancel ---
  const allocation = (order) => page.locator(`tr[data-order="${order}"]`);
  await page.getByLabel('Order').fill('ORD-1');
  await page.getByLabel('Quantity').fill('2');
  await page.getByRole('button', { name: 'Allocate' }).click();
  await allocation('ORD-1').getByText('created').waitFor();
  await allocation('ORD-1').getByRole('button', { name: /^Confirm/ }).click();
  await allocation('ORD-1').getByText('confirmed').waitFor();
  await allocation('ORD-1').getByRole('button', { name: /^Fulfil/ }).click();
  await allocation('ORD-1').getByText('fulfilled').waitFor();
  await page.getByLabel('Order').fill('ORD-2');
  await page.getByLabel('Quantity').fill('1');
  await page.getByRole('button', { name: 'Allocate' }).click();
  await allocation('ORD-2').getByRole('button', { name: /^Cancel/ }).click();
  await allocation('ORD-2').getByLabel('Reason').fill('customer changed their mind');
  await allocation('ORD-2').getByRole('button', { name: 'Cancel allocation' }).click();
  await allocation('ORD-2').getByText('cancelled').waitFor();
  const { allocations } = await gql(`query($i: ID!) { allocations(itemId: $i) { edges { node { orderId status } } } }`, { i: ids['D-011'] });
  const states = Object.fromEntries(allocations.edges.map((e) => [e.node.orderId, e.node.status]));
  if (states['ORD-1'] !== 'FULFILLED' || states['ORD-2'] !== 'CANCELLED') fail(`allocations in the store: ${JSON.stringify(states)}`);
  step('allocate, confirm, fulfil and cancel from the page land in the store');
  await page.screenshot({ path: `${shots}/desktop-item.png`, fullPage: true });

  // --- 360 px wide: nothing spills sideways ---
  await page.setViewportSize({ width: 360, height: 780 });
  await page.screenshot({ path: `${shots}/phone-item.png`, fullPage: true });
  const itemWidth = await page.evaluate(() => document.documentElement.scrollWidth);
  await page.goto(new URL(`/#/warehouses/${warehouseId}`, service).href);
  await page.waitForFunction(() => document.querySelectorAll('table.items tbody tr').length === 100);
  await page.screenshot({ path: `${shots}/phone-items.png` });
  const listWidth = await page.evaluate(() => document.documentElement.scrollWidth);
  if (itemWidth > 360 || listWidth > 360) fail(`at 360 px the page is ${itemWidth} / ${listWidth} px wide`);
  step('at 360 px the pages fit the width (wide tables scroll in their own box)');
  await page.setViewportSize({ width: 1920, height: 1080 });

  // --- the service restarts: the page says so, reconnects, and shows what changed after ---
  await page.locator('[data-feed="connected"]').waitFor();
  restarting = true;
  await ask('@kill', 'killed');
  await page.locator('[data-feed="away"]').waitFor();
  const away = await page.locator('[data-feed]').innerText();
  step(`with the service down the page says: "${away}"`);
  await page.screenshot({ path: `${shots}/desktop-away.png` });
  await ask('@start', 'started');
  const started = performance.now();
  // Changed at once, likely before the page is back: the refetch on reconnect must show it.
  const early = await adjust(ids['D-020'], 7, 'RECEIVED');
  await page.locator('[data-feed="connected"]').waitFor();
  figure(`service ready to the page's feed connected again: ${(performance.now() - started).toFixed(0)} ms`);
  restarting = false;
  await untilCell('D-020', 'On hand', String(early.onHand));
  await sleep(300);
  const sent = performance.now();
  const later = await adjust(ids['D-021'], 8, 'RECEIVED');
  const shown = await untilCell('D-021', 'On hand', String(later.onHand));
  figure(`after the restart, mutation to the row updated: ${(shown - sent).toFixed(0)} ms`);
  step('after the restart the page reconnected and shows changes made since');

  if (foreign.length) fail(`requests to other hosts: ${foreign.join(', ')}`);
  if (served === 0) fail('no request reached the service');
  if (problems.length) fail(`errors in the page: ${problems.join(' | ')}`);
  step(`ok (${served} requests, all to the service; screenshots in ${shots})`);
}

try {
  await main();
} catch (e) {
  if (!process.exitCode) console.error(`dashboard: FAIL: ${e.stack ?? e}`);
  process.exitCode = 1;
  if (problems.length) console.error(`dashboard: the page reported: ${problems.join(' | ')}`);
  await mkdir(shots, { recursive: true }).catch(() => {});
  await page
    ?.screenshot({ path: `${shots}/failure.png`, fullPage: true })
    .then(() => console.error(`dashboard: screenshot of the failure: ${shots}/failure.png`))
    .catch(() => {});
} finally {
  await browser?.close();
  process.stdin.destroy();
}
