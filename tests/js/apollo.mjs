// @apollo/client as a dashboard uses it: HttpLink for queries and mutations, GraphQLWsLink for
// subscriptions, one normalised InMemoryCache. Checks that a query of inventoryItems fills the
// cache, that a mutation's payload and then a low-stock alert (caused by another client)
// update the cached item with no refetch, and that node(id:) is answered from the cache.
// Usage: node apollo.mjs http://127.0.0.1:PORT. Exits non-zero on any failure.
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { getMainDefinition } from '@apollo/client/utilities';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const base = process.argv[2];
if (!base) {
  console.error('usage: node apollo.mjs http://host:port');
  process.exit(2);
}
const failures = [];
const check = (what, ok, detail = '') => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}${detail ? ` (${detail})` : ''}`);
  if (!ok) failures.push(what);
};

// Another client: plain fetch, outside Apollo.
async function other(query, variables = {}) {
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data;
}

const suffix = Math.random().toString(36).slice(2, 8).toUpperCase();
const warehouseId = (
  await other(
    `mutation($input: WarehouseCreateInput!) { warehouseCreate(input: $input) { warehouse { id } } }`,
    { input: { code: `AP${suffix}`, name: 'Apollo test' } },
  )
).warehouseCreate.warehouse.id;
const itemId = (
  await other(
    `mutation($input: InventoryItemCreateInput!) { inventoryItemCreate(input: $input) { inventoryItem { id } } }`,
    {
      input: {
        warehouseId,
        sku: `CUP-${suffix}`,
        productId: 'cup',
        initialQuantity: 30,
        reorderThreshold: 5,
        reorderQuantity: 20,
      },
    },
  )
).inventoryItemCreate.inventoryItem.id;

// Read models follow commits by a moment: wait (outside Apollo) until the new item is listed.
for (let tries = 0; ; tries += 1) {
  const listed = await other(
    `query($w: ID) { inventoryItems(warehouseId: $w, first: 10) { edges { node { id } } } }`,
    { w: warehouseId },
  );
  if (listed.inventoryItems.edges.some((e) => e.node.id === itemId)) break;
  if (tries >= 200) throw new Error('the new item was never listed');
  await new Promise((resolve) => setTimeout(resolve, 50));
}

// Every HTTP request Apollo makes is counted: the cache must be updated without refetches.
let httpRequests = 0;
const countingFetch = (...args) => {
  httpRequests += 1;
  return fetch(...args);
};
const wsClient = createClient({
  url: `${base.replace(/^http/, 'ws')}/graphql/ws`,
  webSocketImpl: WebSocket,
  retryAttempts: 0,
});
const link = ApolloLink.split(
  ({ query }) => {
    const definition = getMainDefinition(query);
    return definition.kind === 'OperationDefinition' && definition.operation === 'subscription';
  },
  new GraphQLWsLink(wsClient),
  new HttpLink({ uri: `${base}/graphql`, fetch: countingFetch }),
);
const cache = new InMemoryCache({
  possibleTypes: { Node: ['Warehouse', 'InventoryItem', 'Allocation'] },
  typePolicies: {
    Query: {
      fields: {
        // Relay's node(id:) read from the cache when the object is there (a cache redirect).
        node: {
          read(existing, { args, toReference, canRead }) {
            if (existing) return existing;
            const reference = toReference({ __typename: 'InventoryItem', id: args.id });
            return canRead(reference) ? reference : undefined;
          },
        },
      },
    },
  },
});
const client = new ApolloClient({ link, cache });

const ITEM_FIELDS = 'id sku onHand allocated available lowStock version';
const cached = () =>
  cache.readFragment({
    id: cache.identify({ __typename: 'InventoryItem', id: itemId }),
    fragment: gql`fragment Cached on InventoryItem { ${ITEM_FIELDS} }`,
  });

// 1. A page of inventoryItems fills the cache.
const page = await client.query({
  query: gql`query($w: ID) { inventoryItems(warehouseId: $w, first: 10) { totalCount edges { cursor node { ${ITEM_FIELDS} } } } }`,
  variables: { w: warehouseId },
});
const listed = page.data.inventoryItems.edges.map((e) => e.node.id);
check('inventoryItems lists the item', listed.includes(itemId), JSON.stringify(listed));
check('the item is in the normalised cache', cached()?.available === 30, JSON.stringify(cached()));

// 2. The mutation's payload updates the cached item (same __typename and id).
const before = httpRequests;
await client.mutate({
  mutation: gql`mutation($input: InventoryAdjustInput!) { inventoryAdjust(input: $input) { inventoryItem { ${ITEM_FIELDS} } userErrors { message } } }`,
  variables: { input: { itemId, delta: -10, reason: 'SOLD' } },
});
check('a mutation updates the cached item', cached()?.available === 20, JSON.stringify(cached()));
check('with one request, no refetch', httpRequests - before === 1, `${httpRequests - before} requests`);

// 3. A low-stock alert caused by another client updates the cached item through its `item`.
const alert = new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error('no alert within 10 s')), 10_000);
  const subscription = client
    .subscribe({
      query: gql`subscription($w: ID) { lowStockAlerts(warehouseId: $w) { id sequenceNumber available item { ${ITEM_FIELDS} } } }`,
      variables: { w: warehouseId },
    })
    .subscribe({
      next: (result) => {
        clearTimeout(timer);
        subscription.unsubscribe();
        resolve(result);
      },
      error: (error) => {
        clearTimeout(timer);
        reject(error);
      },
    });
});
await new Promise((r) => setTimeout(r, 300));
const beforeAlert = httpRequests;
await other(
  `mutation($input: InventoryAdjustInput!) { inventoryAdjust(input: $input) { inventoryItem { available } } }`,
  { input: { itemId, delta: -16, reason: 'SOLD' } },
);
try {
  const result = await alert;
  const got = result.data?.lowStockAlerts;
  check('the alert arrives with an id and its item', Boolean(got?.id) && got?.item?.id === itemId, JSON.stringify(got));
  // Apollo writes a subscription result into the cache before handing it over.
  check('the alert updates the cached item', cached()?.available === 4 && cached()?.lowStock === true, JSON.stringify(cached()));
  check('no HTTP refetch for it', httpRequests === beforeAlert, `${httpRequests - beforeAlert} requests`);
} catch (error) {
  check('the alert arrives with an id and its item', false, String(error));
}

// 4. node(id:) is answered from the cache (no request).
const beforeNode = httpRequests;
const node = await client.query({
  query: gql`query($id: ID!) { node(id: $id) { id ... on InventoryItem { sku available } } }`,
  variables: { id: itemId },
  fetchPolicy: 'cache-first',
});
check('node(id:) reads the item from the cache', node.data?.node?.available === 4, JSON.stringify(node.data));
check('without a request', httpRequests === beforeNode, `${httpRequests - beforeNode} requests`);
// ...and from the server for an object not cached yet.
const fetched = await client.query({
  query: gql`query($id: ID!) { node(id: $id) { id ... on Warehouse { code } } }`,
  variables: { id: warehouseId },
  fetchPolicy: 'network-only',
});
check('node(id:) fetches a warehouse', fetched.data?.node?.code === `AP${suffix}`, JSON.stringify(fetched.data));

await wsClient.dispose();
if (failures.length > 0) {
  console.error(`${failures.length} check(s) failed: ${failures.join('; ')}`);
  process.exit(1);
}
console.log('apollo: every check passed');
process.exit(0);
