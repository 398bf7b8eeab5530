// The status page's chart: messages accepted, delivered and deferred per minute over the last hour, as
// an inline SVG (no script, no external asset): one line per series, a light grid, the peak on the
// y axis, minutes on the x axis, and a legend. Pure.

export interface Series {
  label: string;
  color: string;
  /** One value per minute, oldest first. */
  values: number[];
}

const W = 640;
const H = 180;
const PAD = { left: 36, right: 12, top: 12, bottom: 26 };

/** The SVG element for `series` (all of the same length). */
export function lineChart(series: Series[], title: string): string {
  const n = Math.max(2, ...series.map((s) => s.values.length));
  const peak = Math.max(1, ...series.flatMap((s) => s.values));
  const top = niceCeiling(peak);
  const x = (i: number) => PAD.left + (i / (n - 1)) * (W - PAD.left - PAD.right);
  const y = (v: number) => H - PAD.bottom - (v / top) * (H - PAD.top - PAD.bottom);
  const grid = [0, 0.5, 1].map((f) => {
    const v = top * f;
    return `<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y(v)}" y2="${y(v)}" class="grid"/>` +
      `<text x="${PAD.left - 6}" y="${y(v) + 4}" text-anchor="end">${formatNumber(v)}</text>`;
  }).join("");
  const ticks = [0, 15, 30, 45, 59].map((m) => {
    const i = Math.round((m / 59) * (n - 1));
    const ago = n - 1 - i;
    return `<text x="${x(i)}" y="${H - 8}" text-anchor="middle">${ago === 0 ? "now" : `-${ago}m`}</text>`;
  }).join("");
  const lines = series.map((s) => {
    const points = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    return `<polyline points="${points}" fill="none" stroke="${s.color}" stroke-width="2" ` +
      `data-series="${s.label}" data-total="${s.values.reduce((a, b) => a + b, 0)}"/>`;
  }).join("");
  const legend = series.map((s, i) =>
    `<g transform="translate(${PAD.left + 8 + i * 130},${PAD.top + 4})">` +
    `<rect width="12" height="12" fill="${s.color}"/><text x="18" y="11">${s.label}</text></g>`
  ).join("");
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="100%" ` +
    `role="img" aria-label="${title}" class="chart">${grid}${ticks}${lines}${legend}</svg>`;
}

/** The smallest of 1, 2, 5 x 10^k at or above `v`. */
function niceCeiling(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function formatNumber(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}
