// Two small SVG charts, drawn here rather than pulled from a chart library: stock on hand over
// time (a step line: stock holds its level between changes) and the daily movements as bars.
// Each has a text summary for screen readers; numbers on the axes are the data's own.
import { number, shortTime } from './format.js';


const W = 640;
const H = 200;
const PAD = { left: 60, right: 12, top: 12, bottom: 34 };

/** `points`: [{ at: Date, value }], oldest first; the line runs on to `until`. */
export function StockChart({ points, until }) {
  if (points.length === 0) return <p className="quiet">No stock changes yet.</p>;
  const start = points[0].at.getTime();
  const end = Math.max(until.getTime(), start + 1);
  const top = Math.max(1, ...points.map((p) => p.value));
  const x = (t) => PAD.left + ((t - start) / (end - start)) * (W - PAD.left - PAD.right);
  const y = (v) => PAD.top + (1 - v / top) * (H - PAD.top - PAD.bottom);
  let path = `M${x(start)},${y(points[0].value)}`;
  for (const p of points.slice(1)) path += ` H${x(p.at.getTime())} V${y(p.value)}`;
  path += ` H${x(end)}`;
  const last = points.at(-1).value;
  return (
    <svg className="chart" viewBox={`0 0 ${W} ${H}`} role="img" aria-labelledby="stock-chart-title">
      <title id="stock-chart-title">
        On hand from {number(points[0].value)} to {number(last)} over {points.length} changes
      </title>
      <Axes top={top} y={y} />
      <text x={PAD.left} y={H - 6} className="tick">{shortTime(new Date(start), end - start)}</text>
      <text x={W - PAD.right} y={H - 6} className="tick" textAnchor="end">{shortTime(new Date(end), end - start)}</text>
      <path d={path} className="line" />
      {points.map((p) => (
        <circle key={p.key} cx={x(p.at.getTime())} cy={y(p.value)} r="2.5" className="point" />
      ))}
    </svg>
  );
}

function Axes({ top, y }) {
  return (
    <g>
      {[0, top / 2, top].map((v) => (
        <g key={v}>
          <line x1={PAD.left} x2={W - PAD.right} y1={y(v)} y2={y(v)} className="grid" />
          <text x={PAD.left - 6} y={y(v) + 4} className="tick" textAnchor="end">
            {number(Math.round(v))}
          </text>
        </g>
      ))}
    </g>
  );
}

/** `days`: [{ day, in, out }] oldest first, `in` and `out` both ≥ 0. */
export function MovementBars({ days }) {
  const top = Math.max(1, ...days.map((d) => Math.max(d.in, d.out)));
  const slot = (W - PAD.left - PAD.right) / Math.max(days.length, 1);
  const bar = Math.max(2, slot * 0.35);
  const y = (v) => PAD.top + (1 - v / top) * (H - PAD.top - PAD.bottom);
  const moved = days.filter((d) => d.in || d.out);
  return (
    <svg className="chart" viewBox={`0 0 ${W} ${H}`} role="img" aria-labelledby="movement-chart-title">
      <title id="movement-chart-title">
        {moved.length === 0
          ? 'No movements in these days'
          : moved.map((d) => `${d.day}: ${number(d.in)} in, ${number(d.out)} out`).join('; ')}
      </title>
      <Axes top={top} y={y} />
      {days.map((d, i) => {
        const left = PAD.left + i * slot + slot * 0.1;
        return (
          <g key={d.day}>
            <rect x={left} y={y(d.in)} width={bar} height={y(0) - y(d.in)} className="bar-in">
              <title>{`${d.day}: ${number(d.in)} in`}</title>
            </rect>
            <rect x={left + bar} y={y(d.out)} width={bar} height={y(0) - y(d.out)} className="bar-out">
              <title>{`${d.day}: ${number(d.out)} out`}</title>
            </rect>
            {/* a label every few days, counted back from today so today always has one */}
            {(days.length - 1 - i) % Math.ceil(days.length / 7) === 0 && (
              <text x={left + bar} y={H - 8} className="tick" textAnchor="middle">
                {d.day.slice(5)}
              </text>
            )}
          </g>
        );
      })}
    </svg>
  );
}
