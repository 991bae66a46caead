// The npm `graphql-ws` client against the service's /graphql/ws, and the protocol's close
// codes as a raw socket provokes them. Usage: node graphql_ws.mjs http://127.0.0.1:PORT
// (the service started with a short --ws-init-timeout-ms, e.g. 500). Exits non-zero on any
// failure, naming what failed.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const base = process.argv[2];
if (!base) {
  console.error('usage: node graphql_ws.mjs http://host:port');
  process.exit(2);
}
const wsUrl = `${base.replace(/^http/, 'ws')}/graphql/ws`;
const failures = [];
const check = (what, ok, detail = '') => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}${detail ? ` (${detail})` : ''}`);
  if (!ok) failures.push(what);
};

async function gql(query, variables = {}) {
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors) throw new Error(`${query.slice(0, 40)}: ${JSON.stringify(body.errors)}`);
  return body.data;
}

const suffix = Math.random().toString(36).slice(2, 8).toUpperCase();
const { warehouseCreate } = await gql(
  `mutation($input: WarehouseCreateInput!) { warehouseCreate(input: $input) { warehouse { id } userErrors { message } } }`,
  { input: { code: `WS${suffix}`, name: 'WebSocket test' } },
);
const warehouseId = warehouseCreate.warehouse.id;
const { inventoryItemCreate } = await gql(
  `mutation($input: InventoryItemCreateInput!) { inventoryItemCreate(input: $input) { inventoryItem { id } userErrors { message } } }`,
  {
    input: {
      warehouseId,
      sku: `MUG-${suffix}`,
      productId: 'mug',
      initialQuantity: 20,
      reorderThreshold: 5,
      reorderQuantity: 10,
    },
  },
);
const itemId = inventoryItemCreate.inventoryItem.id;

// 1. The graphql-ws client: subscribe, then a mutation that crosses the threshold.
{
  const client = createClient({ url: wsUrl, webSocketImpl: WebSocket, retryAttempts: 0 });
  const alert = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no alert within 10 s')), 10_000);
    client.subscribe(
      {
        query: `subscription($w: ID) { lowStockAlerts(warehouseId: $w) { itemId sku available threshold } }`,
        variables: { w: warehouseId },
      },
      {
        next: (message) => {
          clearTimeout(timer);
          resolve(message);
        },
        error: (error) => {
          clearTimeout(timer);
          reject(error instanceof Error ? error : new Error(JSON.stringify(error)));
        },
        complete: () => {},
      },
    );
  });
  // Give the subscription a moment to reach the server before the change.
  await new Promise((r) => setTimeout(r, 300));
  await gql(
    `mutation($input: InventoryAdjustInput!) { inventoryAdjust(input: $input) { inventoryItem { available } userErrors { message } } }`,
    { input: { itemId, delta: -16, reason: 'SOLD' } },
  );
  try {
    const message = await alert;
    const got = message.data?.lowStockAlerts;
    check('graphql-ws client receives the low-stock alert', got?.itemId === itemId && got?.available === 4, JSON.stringify(got));
  } catch (error) {
    check('graphql-ws client receives the low-stock alert', false, String(error));
  }
  await client.dispose();
}

// 2. Close codes, provoked on raw sockets.
function socket(protocol = 'graphql-transport-ws') {
  const ws = new WebSocket(wsUrl, protocol);
  const messages = [];
  const closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  ws.on('message', (data) => messages.push(JSON.parse(data.toString())));
  const open = new Promise((resolve, reject) => {
    ws.on('open', resolve);
    ws.on('error', reject);
  });
  const send = (value) => ws.send(typeof value === 'string' ? value : JSON.stringify(value));
  const waitFor = async (predicate, ms = 5000) => {
    const start = Date.now();
    while (Date.now() - start < ms) {
      const found = messages.find(predicate);
      if (found) return found;
      await new Promise((r) => setTimeout(r, 20));
    }
    return undefined;
  };
  return { ws, open, closed, send, messages, waitFor };
}

async function closeCode(what, expected, act, protocol) {
  const s = socket(protocol);
  await s.open;
  await act(s);
  const result = await Promise.race([s.closed, new Promise((r) => setTimeout(() => r({ code: 'none' }), 8000))]);
  check(`${what}: close ${expected}`, result.code === expected, `got ${result.code} ${result.reason ?? ''}`);
  if (result.code === 'none') s.ws.terminate();
}

const init = (s) => s.send({ type: 'connection_init', payload: {} });
const subscription = { query: 'subscription { lowStockAlerts { itemId } }' };

await closeCode('invalid JSON', 4400, async (s) => s.send('{not json'));
await closeCode('an unknown message type', 4400, async (s) => {
  init(s);
  s.send({ type: 'hello' });
});
await closeCode('subscribe before connection_init', 4401, async (s) =>
  s.send({ type: 'subscribe', id: '1', payload: subscription }),
);
await closeCode('no connection_init within the timeout', 4408, async () => {});
await closeCode('a second connection_init', 4429, async (s) => {
  init(s);
  await s.waitFor((m) => m.type === 'connection_ack');
  init(s);
});
await closeCode('a duplicate subscription id', 4409, async (s) => {
  init(s);
  await s.waitFor((m) => m.type === 'connection_ack');
  s.send({ type: 'subscribe', id: 'same', payload: subscription });
  s.send({ type: 'subscribe', id: 'same', payload: subscription });
});

// 3. An operation that fails validation: one `error` message, no `next`, no `complete`.
{
  const s = socket();
  await s.open;
  init(s);
  await s.waitFor((m) => m.type === 'connection_ack');
  s.send({ type: 'subscribe', id: 'bad', payload: { query: 'subscription { noSuchField }' } });
  const error = await s.waitFor((m) => m.id === 'bad');
  await new Promise((r) => setTimeout(r, 300));
  const forBad = s.messages.filter((m) => m.id === 'bad').map((m) => m.type);
  check(
    'a validation error is one error message with the GraphQL errors',
    error?.type === 'error' && Array.isArray(error.payload) && error.payload.length > 0 && forBad.length === 1,
    JSON.stringify(forBad),
  );
  // ping → pong
  s.send({ type: 'ping', payload: { n: 1 } });
  const pong = await s.waitFor((m) => m.type === 'pong');
  check('ping is answered by pong with its payload', pong?.payload?.n === 1);
  s.ws.close(1000);
}

// 4. The legacy protocol ends cleanly on connection_terminate.
await closeCode(
  'legacy graphql-ws connection_terminate',
  1000,
  async (s) => {
    init(s);
    await s.waitFor((m) => m.type === 'connection_ack');
    s.send({ type: 'start', id: '1', payload: subscription });
    s.send({ type: 'connection_terminate' });
  },
  'graphql-ws',
);

// 5. A socket from a foreign origin is closed at once with 4403, before it reads anything.
{
  const ws = new WebSocket(wsUrl, 'graphql-transport-ws', { headers: { origin: 'http://evil.example' } });
  const got = await new Promise((resolve) => {
    ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: {} })));
    ws.on('message', (data) => resolve(`message ${data}`));
    ws.on('close', (code) => resolve(code));
    ws.on('error', () => resolve('error'));
    setTimeout(() => resolve('none'), 5000);
  });
  check('a WebSocket from a foreign origin is closed with 4403 and never acknowledged', got === 4403, String(got));
  ws.terminate();
}

if (failures.length > 0) {
  console.error(`${failures.length} check(s) failed: ${failures.join('; ')}`);
  process.exit(1);
}
console.log('graphql-ws: every check passed');
process.exit(0);
