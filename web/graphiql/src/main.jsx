// The service's GraphiQL page. Everything it needs is bundled from npm by build.mjs and served
// by the service under /graphql/assets/, so it works with no network beyond the service itself
// (the Content-Security-Policy sent with the page allows nothing else).
import './workers.js';
import React from 'react';
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { createClient } from 'graphql-ws';
import 'graphiql/style.css';
import './page.css';

const httpUrl = new URL('/graphql', window.location.href).toString();
const wsUrl = new URL('/graphql/ws', window.location.href);
wsUrl.protocol = wsUrl.protocol === 'https:' ? 'wss:' : 'ws:';

// Subscriptions go over graphql-transport-ws (the graphql-ws client); queries and mutations
// over HTTP POST, with whatever the headers editor holds.
// The service has no incremental delivery (@defer/@stream), so the plain fetcher, which asks
// for application/graphql-response+json and so gets the spec's status codes.
const fetcher = createGraphiQLFetcher({
  url: httpUrl,
  enableIncrementalDelivery: false,
  wsClient: createClient({ url: wsUrl.toString(), lazy: true, retryAttempts: 3 }),
});

const defaultQuery = `# Inventory service. Ctrl-Enter runs the operation under the cursor;
# the headers editor below is where credentials go.

query Items {
  inventoryItems(first: 20) {
    pageInfo { hasNextPage endCursor }
    edges {
      node {
        id
        sku
        onHand
        available
        reorderThreshold
        lowStock
        warehouse { code name }
      }
    }
  }
}

# Live low-stock alerts: uncomment, run, then drive an item's available stock down to its
# reorder threshold (inventoryAdjust) from another tab.
#
# subscription Alerts {
#   lowStockAlerts {
#     sku
#     warehouseId
#     available
#     threshold
#     suggestedReorderQuantity
#     occurredAt
#   }
# }
`;

createRoot(document.getElementById('graphiql')).render(
  React.createElement(GraphiQL, {
    fetcher,
    defaultQuery,
    isHeadersEditorEnabled: true,
    // Credentials typed into the headers editor stay in this tab, not in localStorage.
    shouldPersistHeaders: false,
  }),
);
