// The status strip: the live feed's state (and since when the service has been away), and the
// service's projection lag and outbox depth (`serviceStatus`, polled every 5 s while connected).
import { useEffect } from 'react';
import { useQuery } from 'urql';
import { SERVICE_STATUS } from './queries.js';
import { number, time, zone } from './format.js';

const POLL_MS = 5_000;

const FEED_TEXT = {
  connecting: 'Connecting…',
  connected: 'Live',
  away: 'Service unreachable, reconnecting…',
};

export function StatusStrip({ feed }) {
  const connected = feed.state === 'connected';
  const [{ data }, poll] = useQuery({ query: SERVICE_STATUS, requestPolicy: 'network-only', pause: !connected });
  useEffect(() => {
    if (!connected) return undefined;
    const timer = setInterval(() => poll({ requestPolicy: 'network-only' }), POLL_MS);
    return () => clearInterval(timer);
  }, [connected, poll]);
  const status = connected ? data?.serviceStatus : null;
  const lag = status?.projectionLagSeconds;

  return (
    <section className="strip" aria-label="Service status">
      <span className={`feed feed-${feed.state}`} role="status" aria-live="polite" data-feed={feed.state}>
        <span className="dot" aria-hidden="true" />
        {FEED_TEXT[feed.state]}
        {feed.state === 'away' && <> since {time(feed.since)}</>}
      </span>
      <span>
        Projection lag <b className="num">{lag == null ? '–' : `${lag < 1 ? (lag * 1000).toFixed(0) + ' ms' : lag.toFixed(1) + ' s'}`}</b>
      </span>
      <span>
        Outbox <b className="num">{number(status?.outboxDepth)}</b>
      </span>
      <span className="zone">Times in {zone()}</span>
    </section>
  );
}
