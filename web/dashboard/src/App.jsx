// The page's shell: the connection (remade when the API key changes), who the caller is, the
// route (`#/warehouses/<id>` or `#/items/<id>`), and the parts that live on every screen: the
// status strip, the sign-in form, the low-stock alerts.
import { useEffect, useMemo, useState } from 'react';
import { Provider, useQuery } from 'urql';
import { connect, storeKey, storedKey } from './connection.js';
import { VIEWER, WAREHOUSES } from './queries.js';
import { StatusStrip } from './StatusStrip.jsx';
import { Alerts } from './Alerts.jsx';
import { ItemTable } from './ItemTable.jsx';
import { ItemPage } from './ItemPage.jsx';

export function App() {
  const [apiKey, setApiKey] = useState(storedKey);
  const [asking, setAsking] = useState(false);
  // `epoch` counts reconnections: views refetch when it moves, since the live feed missed
  // whatever changed while the service was away.
  const [feed, setFeed] = useState({ state: 'connecting', since: new Date(), epoch: 0 });
  const connection = useMemo(
    () =>
      connect(apiKey, {
        onFeed: (next) =>
          setFeed((prev) => ({
            state: next.state,
            since: prev.state === next.state ? prev.since : next.since,
            epoch: prev.epoch + (next.reconnected ? 1 : 0),
          })),
        onUnauthenticated: () => setAsking(true),
      }),
    [apiKey],
  );
  useEffect(() => () => connection.close(), [connection]);

  const signIn = (key) => {
    storeKey(key);
    setAsking(false);
    setApiKey(key);
  };
  return (
    <Provider value={connection.client}>
      <Dashboard feed={feed} apiKey={apiKey} asking={asking} setAsking={setAsking} signIn={signIn} />
    </Provider>
  );
}

function useRoute() {
  const [hash, setHash] = useState(() => window.location.hash);
  useEffect(() => {
    const changed = () => setHash(window.location.hash);
    window.addEventListener('hashchange', changed);
    return () => window.removeEventListener('hashchange', changed);
  }, []);
  const [, kind, id] = hash.match(/^#\/(warehouses|items)\/([^/?#]+)/) ?? [];
  return { kind, id: id && decodeURIComponent(id) };
}

/** Whether the caller may run stock and allocation commands in this warehouse. */
function mayAct(viewer, warehouseId) {
  if (!viewer || !['OPERATOR', 'ADMIN'].includes(viewer.role)) return false;
  return viewer.warehouseIds == null || viewer.warehouseIds.includes(warehouseId);
}

function Dashboard({ feed, apiKey, asking, setAsking, signIn }) {
  const route = useRoute();
  const [{ data: who }] = useQuery({ query: VIEWER });
  const [{ data: places }, refetchWarehouses] = useQuery({ query: WAREHOUSES });
  useEffect(() => {
    if (feed.epoch > 0) refetchWarehouses({ requestPolicy: 'network-only' });
  }, [feed.epoch, refetchWarehouses]);
  const viewer = who?.viewer;
  const warehouses = (places?.warehouses.edges ?? []).map((e) => e.node);
  const warehouseId = route.kind === 'warehouses' ? route.id : (warehouses[0]?.id ?? null);

  return (
    <>
      <a className="skip" href="#main">Skip to content</a>
      <header className="top">
        <h1>
          <a href={warehouseId ? `#/warehouses/${warehouseId}` : '#'}>Inventory</a>
        </h1>
        <div className="who">
          {viewer && (
            <span>
              {viewer.name} · <span className="role">{viewer.role.toLowerCase()}</span>
            </span>
          )}
          {apiKey ? (
            <button type="button" onClick={() => signIn('')}>Sign out</button>
          ) : (
            <button type="button" onClick={() => setAsking(true)}>Sign in</button>
          )}
        </div>
      </header>
      <StatusStrip feed={feed} />
      {asking && <SignIn refused={Boolean(apiKey)} onKey={signIn} onCancel={() => setAsking(false)} />}
      <div className="layout">
        <main id="main" tabIndex={-1}>
          {route.kind === 'items' ? (
            <ItemPage key={route.id} id={route.id} epoch={feed.epoch} mayAct={(w) => mayAct(viewer, w)} warehouses={warehouses} />
          ) : (
            <>
              <WarehousePicker warehouses={warehouses} selected={warehouseId} />
              {warehouseId && <ItemTable key={warehouseId} warehouseId={warehouseId} epoch={feed.epoch} />}
              {places && warehouses.length === 0 && <p>No warehouses yet.</p>}
            </>
          )}
        </main>
        <Alerts warehouses={warehouses} />
      </div>
    </>
  );
}

function WarehousePicker({ warehouses, selected }) {
  return (
    <div className="picker">
      <label htmlFor="warehouse">Warehouse</label>
      <select
        id="warehouse"
        value={selected ?? ''}
        onChange={(e) => {
          window.location.hash = `#/warehouses/${encodeURIComponent(e.target.value)}`;
        }}
      >
        {warehouses.map((w) => (
          <option key={w.id} value={w.id}>
            {w.code} · {w.name}
            {w.active ? '' : ' (inactive)'}
          </option>
        ))}
      </select>
    </div>
  );
}

function SignIn({ refused, onKey, onCancel }) {
  const [key, setKey] = useState('');
  return (
    <form
      className="signin"
      aria-labelledby="signin-title"
      onSubmit={(e) => {
        e.preventDefault();
        if (key.trim()) onKey(key.trim());
      }}
    >
      <h2 id="signin-title">Sign in</h2>
      <p>
        {refused
          ? 'The service refused that key, or it may not do this. Enter another API key.'
          : 'The service needs an API key for this. It is kept for this browser tab only.'}
      </p>
      <label htmlFor="api-key">API key</label>
      <input
        id="api-key"
        type="password"
        autoComplete="off"
        spellCheck={false}
        placeholder="inv_…"
        value={key}
        onChange={(e) => setKey(e.target.value)}
        autoFocus
      />
      <button type="submit">Sign in</button>
      <button type="button" onClick={onCancel}>
        Cancel
      </button>
    </form>
  );
}
