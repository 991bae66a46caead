// One item: its figures, stock over time (`inventoryHistory`), the daily movements of the last
// two weeks (`stockMovementReport`), its allocations and its raw event trail (`events`), all
// in one query, fetched again whenever the item or one of its allocations changes (live
// feeds) and after a reconnect. The commands appear only for a caller that may run them.
import { useEffect, useMemo } from 'react';
import { useQuery, useSubscription } from 'urql';
import { ALLOCATION_CHANGED, ITEM_CHANGED, ITEM_PAGE } from './queries.js';
import { COLUMNS } from './items.js';
import { number, time, utcDay } from './format.js';
import { MovementBars, StockChart } from './Charts.jsx';
import { AdjustForm, AllocateForm, AllocationActions } from './Actions.jsx';

const DAYS = 14;

export function ItemPage({ id, epoch, mayAct }) {
  const variables = useMemo(() => ({ id, from: utcDay(DAYS - 1), to: utcDay(0) }), [id]);
  const [{ data, error, fetching }, refetch] = useQuery({ query: ITEM_PAGE, variables });
  const again = () => refetch({ requestPolicy: 'network-only' });

  const [itemChange] = useSubscription({ query: ITEM_CHANGED, variables: { itemId: id } });
  const [allocationChange] = useSubscription({ query: ALLOCATION_CHANGED });
  const changedAllocation = allocationChange.data?.allocationChanged;
  useEffect(() => {
    if (itemChange.data) again();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [itemChange.data]);
  useEffect(() => {
    if (changedAllocation?.itemId === id) again();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [changedAllocation]);
  useEffect(() => {
    if (epoch > 0) again();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [epoch]);

  if (error && !data) return <p className="error" role="alert">Could not load the item: {error.message}</p>;
  if (!data) return <p aria-busy={fetching}>Loading…</p>;
  const item = data.inventoryItem;
  if (!item) return <p>No such item.</p>;
  // The live copy is newer than the page's while the refetch it caused is under way.
  const shown = itemChange.data?.inventoryItemChanged?.version > item.version ? { ...item, ...itemChange.data.inventoryItemChanged } : item;
  const context = { item: shown, data, canAct: mayAct(item.warehouseId) };

  return (
    <article className="item" aria-labelledby="item-title">
      <p>
        <a href={`#/warehouses/${item.warehouseId}`}>← {item.warehouse?.code ?? 'Warehouse'} items</a>
      </p>
      <h2 id="item-title">
        {item.sku} {shown.lowStock && <span className="badge low">Low</span>}
        {!item.active && <span className="badge">Inactive</span>}
      </h2>
      <dl className="figures">
        {COLUMNS.filter((c) => c.numeric).map((c) => (
          <div key={c.key}>
            <dt>{c.label}</dt>
            <dd className="num" data-figure={c.key}>
              {number(shown[c.key])}
            </dd>
          </div>
        ))}
        <div>
          <dt>Reorder quantity</dt>
          <dd className="num">{number(shown.reorderQuantity)}</dd>
        </div>
      </dl>
      <p className="quiet">
        Product {item.productId} · version {shown.version} · updated {time(shown.updatedAt)}
      </p>
      {PANELS.filter((panel) => !panel.when || panel.when(context)).map(({ title, id: panelId, Body }) => (
        <section key={panelId} className="panel" aria-labelledby={`${panelId}-title`}>
          <h3 id={`${panelId}-title`}>{title}</h3>
          <Body {...context} />
        </section>
      ))}
    </article>
  );
}

function Commands({ item }) {
  return (
    <div className="commands">
      <AdjustForm item={item} />
      <AllocateForm item={item} />
    </div>
  );
}

function StockOverTime({ item, data }) {
  const points = data.inventoryHistory.edges.map(({ node }) => ({ key: node.id, at: new Date(node.occurredAt), value: node.quantityAfter }));
  return (
    <>
      <StockChart points={points} until={new Date(Math.max(Date.now(), Date.parse(item.updatedAt)))} />
      {data.inventoryHistory.totalCount > points.length && (
        <p className="quiet">The latest {number(points.length)} of {number(data.inventoryHistory.totalCount)} changes.</p>
      )}
    </>
  );
}

function Movements({ data }) {
  const byDay = new Map(data.stockMovementReport.rows.map((r) => [r.day, r]));
  const days = Array.from({ length: DAYS }, (_, i) => {
    const day = utcDay(DAYS - 1 - i);
    const row = byDay.get(day);
    return { day, in: row?.received ?? 0, out: (row?.removed ?? 0) + (row?.fulfilled ?? 0) };
  });
  return (
    <>
      <MovementBars days={days} />
      <p className="legend">
        <span className="key key-in" aria-hidden="true" /> received <span className="key key-out" aria-hidden="true" /> removed and fulfilled, per UTC day
      </p>
    </>
  );
}

function Allocations({ item, data, canAct }) {
  const rows = (data.inventoryItem.allocations.edges ?? []).map((e) => e.node).reverse();
  if (rows.length === 0) return <p className="quiet">No allocations.</p>;
  return (
    <div className="scroll">
      <table>
        <thead>
          <tr>
            <th scope="col">Order</th>
            <th scope="col" className="num">Quantity</th>
            <th scope="col">Status</th>
            <th scope="col">Expires</th>
            <th scope="col">Created</th>
            {canAct && <th scope="col">Actions</th>}
          </tr>
        </thead>
        <tbody>
          {rows.map((a) => (
            <tr key={a.id} data-order={a.orderId}>
              <th scope="row">{a.orderId}</th>
              <td className="num">{number(a.quantity)}</td>
              <td>
                {a.status.toLowerCase()}
                {a.cancelReason ? ` (${a.cancelReason})` : ''}
              </td>
              <td>{time(a.expiresAt)}</td>
              <td>{time(a.createdAt)}</td>
              {canAct && (
                <td>
                  <AllocationActions allocation={a} item={item} />
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Transfers({ item, data }) {
  const rows = (data.inventoryItem.transfers.edges ?? []).map((e) => e.node).reverse();
  if (rows.length === 0) return <p className="quiet">No transfers.</p>;
  return (
    <div className="scroll">
      <table>
        <thead>
          <tr>
            <th scope="col">Direction</th>
            <th scope="col" className="num">Quantity</th>
            <th scope="col" className="num">Received</th>
            <th scope="col">Status</th>
            <th scope="col">Reference</th>
            <th scope="col">Created</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((t) => (
            <tr key={t.id} data-transfer={t.id}>
              <th scope="row">{t.fromItemId === item.id ? 'out' : 'in'}</th>
              <td className="num">{number(t.quantity)}</td>
              <td className="num">
                {t.quantityReceived == null ? '' : number(t.quantityReceived)}
                {t.shortfall ? ` (${number(t.shortfall)} short)` : ''}
              </td>
              <td>{t.status.toLowerCase()}</td>
              <td>{t.reference ?? ''}</td>
              <td>{time(t.createdAt)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function EventTrail({ data }) {
  const events = data.events.edges.map((e) => e.node).reverse();
  return (
    <>
      <ol className="events" reversed>
        {events.map((e) => (
          <li key={e.eventId} data-event-type={e.eventType}>
            <span className="num">#{e.sequenceNumber}</span> <b>{e.eventType}</b> <time dateTime={e.occurredAt}>{time(e.occurredAt)}</time>{' '}
            <span className="quiet">by {e.metadata.actor}</span>
            <details>
              <summary>Data</summary>
              <pre>{JSON.stringify(e.data, null, 2)}</pre>
            </details>
          </li>
        ))}
      </ol>
      {data.events.totalCount > events.length && <p className="quiet">The latest {number(events.length)} of {number(data.events.totalCount)} events.</p>}
    </>
  );
}

// The item page's panels, in order. Each gets { item, data, canAct }; `when` hides a panel.
// A new panel (e.g. the item's transfers, once the API has them) is one entry here, its data
// one more field in ITEM_PAGE (queries.js).
const PANELS = [
  { id: 'commands', title: 'Commands', Body: Commands, when: ({ canAct }) => canAct },
  { id: 'stock', title: 'Stock on hand over time', Body: StockOverTime },
  { id: 'movements', title: `Daily movements, last ${DAYS} days`, Body: Movements },
  { id: 'allocations', title: 'Allocations', Body: Allocations },
  { id: 'transfers', title: 'Transfers', Body: Transfers },
  { id: 'events', title: 'Event trail', Body: EventTrail },
];
