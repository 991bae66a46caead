// A warehouse's items: pages of the `inventoryItems` connection (100 rows each, "Load more"
// follows `endCursor`), kept current by `inventoryItemChanged`, then filtered and sorted here.
// Each row shows the later of what the page and the live feed said (by `version`).
import { useEffect, useMemo, useState } from 'react';
import { useClient, useSubscription } from 'urql';
import { ITEMS, ITEM_CHANGED } from './queries.js';
import { COLUMNS, later } from './items.js';
import { number } from './format.js';

const PAGE = 100;
// The API's largest page: a refetch after a reconnect reloads this many rows at most.
const MAX_PAGE = 500;

function useItems(warehouseId, lowStockOnly, epoch) {
  const client = useClient();
  const [pages, setPages] = useState({ rows: [], total: null, endCursor: null, hasNext: false, fetching: true, error: null });
  const fetchPage = (first, after) =>
    client.query(ITEMS, { warehouseId, lowStockOnly, first, after }, { requestPolicy: 'network-only' }).toPromise();

  // The first page; again, as many rows as were shown, after the feed reconnects.
  useEffect(() => {
    let current = true;
    setPages((p) => ({ ...p, fetching: true }));
    fetchPage(Math.min(Math.max(PAGE, pages.rows.length), MAX_PAGE), null).then(({ data, error }) => {
      if (!current) return;
      const connection = data?.inventoryItems;
      setPages({
        rows: connection ? connection.edges.map((e) => e.node) : [],
        total: connection?.totalCount ?? null,
        endCursor: connection?.pageInfo.endCursor ?? null,
        hasNext: connection?.pageInfo.hasNextPage ?? false,
        fetching: false,
        error,
      });
    });
    return () => {
      current = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps -- pages.rows.length only sizes the refetch
  }, [client, warehouseId, lowStockOnly, epoch]);

  const loadMore = () => {
    setPages((p) => ({ ...p, fetching: true }));
    fetchPage(PAGE, pages.endCursor).then(({ data, error }) => {
      const connection = data?.inventoryItems;
      setPages((p) => ({
        rows: connection ? [...p.rows, ...connection.edges.map((e) => e.node)] : p.rows,
        total: connection?.totalCount ?? p.total,
        endCursor: connection?.pageInfo.endCursor ?? p.endCursor,
        hasNext: connection?.pageInfo.hasNextPage ?? p.hasNext,
        fetching: false,
        error,
      }));
    });
  };

  // The subscription's result is a map of every item it has told of, the latest copy each.
  const [{ data: live }] = useSubscription({ query: ITEM_CHANGED, variables: { warehouseId } }, (seen = new Map(), data) => {
    const item = data.inventoryItemChanged;
    return new Map(seen).set(item.id, later(seen.get(item.id), item));
  });

  const rows = useMemo(() => {
    const byId = new Map(pages.rows.map((row) => [row.id, row]));
    for (const [id, item] of live ?? []) {
      if (byId.has(id)) byId.set(id, later(byId.get(id), item));
      // A new item shows once every page is loaded (else it waits for its page).
      else if (!pages.hasNext && item.warehouseId === warehouseId) byId.set(id, item);
    }
    return [...byId.values()];
  }, [pages, live, warehouseId]);

  return { ...pages, rows, loadMore };
}

function compare(key, numeric) {
  return numeric ? (a, b) => a[key] - b[key] : (a, b) => String(a[key]).localeCompare(String(b[key]));
}

export function ItemTable({ warehouseId, epoch }) {
  const [lowStockOnly, setLowStockOnly] = useState(false);
  const [search, setSearch] = useState('');
  const [sort, setSort] = useState({ key: 'sku', ascending: true });
  const items = useItems(warehouseId, lowStockOnly, epoch);

  const shown = useMemo(() => {
    const needle = search.trim().toLowerCase();
    const column = COLUMNS.find((c) => c.key === sort.key);
    return items.rows
      .filter((row) => (!lowStockOnly || row.lowStock) && (!needle || row.sku.toLowerCase().includes(needle)))
      .sort((a, b) => (sort.ascending ? 1 : -1) * compare(sort.key, column?.numeric)(a, b));
  }, [items.rows, lowStockOnly, search, sort]);

  const sortBy = (key) => setSort((s) => ({ key, ascending: s.key === key ? !s.ascending : true }));

  return (
    <section aria-labelledby="items-title">
      <div className="filters">
        <h2 id="items-title">Items</h2>
        <label>
          <input type="checkbox" checked={lowStockOnly} onChange={(e) => setLowStockOnly(e.target.checked)} /> Low stock only
        </label>
        <span className="search">
          <label htmlFor="sku-search">SKU</label>
          <input id="sku-search" type="search" placeholder="Search loaded items" value={search} onChange={(e) => setSearch(e.target.value)} />
        </span>
      </div>
      {items.error && <p className="error" role="alert">Could not load items: {items.error.message}</p>}
      <div className="scroll">
        <table className="items" aria-busy={items.fetching}>
          <thead>
            <tr>
              {COLUMNS.map((c) => (
                <th
                  key={c.key}
                  scope="col"
                  className={c.numeric ? 'num' : undefined}
                  aria-sort={sort.key === c.key ? (sort.ascending ? 'ascending' : 'descending') : 'none'}
                >
                  <button type="button" onClick={() => sortBy(c.key)}>
                    {c.label}
                    <span aria-hidden="true">{sort.key === c.key ? (sort.ascending ? ' ▲' : ' ▼') : ''}</span>
                  </button>
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {shown.map((row) => (
              <tr key={row.id} data-sku={row.sku} className={row.active ? undefined : 'inactive'}>
                {COLUMNS.map((c) => (
                  <Cell key={c.key} column={c} row={row} />
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <p className="quiet" aria-live="polite">
        {items.fetching
          ? 'Loading…'
          : `Showing ${number(shown.length)} of ${number(items.rows.length)} loaded (${number(items.total)} in this warehouse${lowStockOnly ? ' low on stock' : ''}).`}{' '}
        {items.hasNext && (
          <button type="button" onClick={items.loadMore} disabled={items.fetching}>
            Load {PAGE} more
          </button>
        )}
      </p>
    </section>
  );
}

function Cell({ column, row }) {
  if (column.key === 'sku')
    return (
      <th scope="row">
        <a href={`#/items/${row.id}`}>{row.sku}</a>
      </th>
    );
  if (column.key === 'lowStock')
    return <td>{row.lowStock ? <span className="badge low">Low</span> : <span className="badge ok">OK</span>}</td>;
  return <td className="num">{number(row[column.key])}</td>;
}
