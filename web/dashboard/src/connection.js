// The dashboard's one connection to the service: an urql client for queries and mutations
// over HTTP (POST /graphql) and subscriptions over graphql-ws (/graphql/ws), both carrying the
// API key when one was given. The live feed's state (connecting, connected, away) is reported
// to `onFeed`, so the page can say when the service is gone and refetch when it is back.
import { Client, cacheExchange, fetchExchange, mapExchange, subscriptionExchange } from '@urql/core';
import { createClient as createSocketClient } from 'graphql-ws';

const httpUrl = new URL('/graphql', window.location.href).toString();
const socketUrl = new URL('/graphql/ws', window.location.href);
socketUrl.protocol = socketUrl.protocol === 'https:' ? 'wss:' : 'ws:';

// The key lives for this tab's session only: never localStorage, never a cookie.
const KEY_ITEM = 'inventory-dashboard.api-key';
export const storedKey = () => sessionStorage.getItem(KEY_ITEM) ?? '';
export function storeKey(key) {
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  else sessionStorage.removeItem(KEY_ITEM);
}

// 4403 is the service refusing a socket's credentials: asking again will not help.
const REFUSED_CREDENTIALS = 4403;

/** Whether an urql error means "send credentials" (HTTP 401, or UNAUTHENTICATED). */
export function needsCredentials(error) {
  if (!error) return false;
  if (error.response?.status === 401) return true;
  return error.graphQLErrors?.some((e) => e.extensions?.code === 'UNAUTHENTICATED') ?? false;
}

/**
 * Opens the connection. `onFeed({ state, since, reconnected })` hears of the socket:
 * state is 'connecting', 'connected' or 'away'; `reconnected` is true on a connection made
 * after losing one (time to refetch what may have changed meanwhile).
 * `onUnauthenticated()` is called when the service wants (other) credentials.
 */
export function connect(apiKey, { onFeed, onUnauthenticated }) {
  const authorization = apiKey ? `Bearer ${apiKey}` : undefined;
  let lost = false;

  const socket = createSocketClient({
    url: socketUrl.toString(),
    // Browsers cannot set headers on a WebSocket: the key goes in connection_init.
    connectionParams: () => (authorization ? { authorization } : {}),
    lazy: false,
    keepAlive: 5_000,
    // Keep trying for as long as the page is open (a restart takes a few seconds), at most
    // every two seconds, unless the service refused the key itself.
    retryAttempts: Number.POSITIVE_INFINITY,
    shouldRetry: (event) => event?.code !== REFUSED_CREDENTIALS,
    retryWait: (retries) => new Promise((resolve) => setTimeout(resolve, Math.min(250 * 2 ** retries, 2_000))),
    on: {
      connecting: () => onFeed({ state: lost ? 'away' : 'connecting', since: new Date() }),
      connected: () => {
        onFeed({ state: 'connected', since: new Date(), reconnected: lost });
        lost = false;
      },
      closed: (event) => {
        lost = true;
        if (event?.code === REFUSED_CREDENTIALS) onUnauthenticated();
        onFeed({ state: 'away', since: new Date() });
      },
    },
  });

  const client = new Client({
    url: httpUrl,
    preferGetMethod: false,
    fetchOptions: () => ({ headers: authorization ? { authorization } : {} }),
    exchanges: [
      mapExchange({
        onError(error) {
          if (needsCredentials(error)) onUnauthenticated();
        },
      }),
      cacheExchange,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription: (request) => ({
          subscribe: (sink) => ({ unsubscribe: socket.subscribe({ ...request, query: request.query ?? '' }, sink) }),
        }),
      }),
    ],
  });

  return { client, close: () => socket.dispose() };
}
