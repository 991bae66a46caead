// Low-stock alerts from the `lowStockAlerts` subscription: each one pops up as a notification
// (announced to screen readers) and stays in the alerts list, newest first.
import { useEffect, useState } from 'react';
import { useSubscription } from 'urql';
import { LOW_STOCK_ALERTS } from './queries.js';
import { number, time } from './format.js';

const KEEP = 50;
const NOTICE_MS = 10_000;

export function Alerts({ warehouses }) {
  // The subscription's result is the list itself: each alert is added to what came before
  // (stamped with when it arrived, for the notification; the service's clock may differ).
  const [{ data: alerts = [] }] = useSubscription({ query: LOW_STOCK_ALERTS }, (previous = [], data) => {
    const alert = { ...data.lowStockAlerts, receivedAt: Date.now() };
    return [alert, ...previous.filter((a) => a.id !== alert.id)].slice(0, KEEP);
  });
  const [dismissed, setDismissed] = useState(() => new Set());
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1_000);
    return () => clearInterval(timer);
  }, []);
  const code = (id) => warehouses.find((w) => w.id === id)?.code ?? '';
  const notices = alerts.filter((a) => !dismissed.has(a.id) && now - a.receivedAt < NOTICE_MS);

  return (
    <>
      <div className="notices" aria-live="assertive">
        {notices.map((a) => (
          <div className="notice" role="alert" key={a.id}>
            <span>
              <b>Low stock:</b> <a href={`#/items/${a.itemId}`}>{a.sku}</a> {code(a.warehouseId)} has{' '}
              {number(a.available)} available (reorder at {number(a.threshold)}).
            </span>
            <button type="button" aria-label={`Dismiss the alert for ${a.sku}`} onClick={() => setDismissed((d) => new Set(d).add(a.id))}>
              ×
            </button>
          </div>
        ))}
      </div>
      <aside className="alerts" aria-labelledby="alerts-title">
        <h2 id="alerts-title">Low-stock alerts</h2>
        {alerts.length === 0 ? (
          <p className="quiet">None since this page opened.</p>
        ) : (
          <ol>
            {alerts.map((a) => (
              <li key={a.id} data-sku={a.sku}>
                <a href={`#/items/${a.itemId}`}>{a.sku}</a> <span className="quiet">{code(a.warehouseId)}</span>
                <br />
                <span className="num">{number(a.available)}</span> available, reorder at{' '}
                <span className="num">{number(a.threshold)}</span>; suggest ordering{' '}
                <span className="num">{number(a.suggestedReorderQuantity)}</span>
                <br />
                <time className="quiet" dateTime={a.occurredAt}>
                  {time(a.occurredAt)}
                </time>
              </li>
            ))}
          </ol>
        )}
      </aside>
    </>
  );
}
