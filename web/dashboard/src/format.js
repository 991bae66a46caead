// Numbers and times as the viewer reads them: grouped digits, and times in the viewer's own
// time zone (the API sends UTC).
const numbers = new Intl.NumberFormat();
const times = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const shortTimes = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
const clockTimes = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });

export const number = (n) => (n == null ? '–' : numbers.format(n));
export const time = (iso) => (iso ? times.format(new Date(iso)) : '–');
/** A chart's axis label: with seconds and no date when the chart spans under an hour. */
export const shortTime = (date, span) => (span < 3_600_000 ? clockTimes : shortTimes).format(date);
export const zone = () => Intl.DateTimeFormat().resolvedOptions().timeZone;

/** A UTC day `YYYY-MM-DD`, `days` before today (the movement report's days are UTC days). */
export function utcDay(daysAgo = 0) {
  const d = new Date(Date.now() - daysAgo * 86_400_000);
  return d.toISOString().slice(0, 10);
}
