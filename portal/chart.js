// Bar charts drawn as SVG by Preact: every label is a text node, nothing is parsed as markup.
import { html } from '/portal/vendor/preact-htm.js';

const fmt = (n) => (Number.isInteger(n) ? n.toLocaleString('en') : n.toFixed(1));

/**
 * Horizontal bars, one row per item: [{ label, value, note? }]. Fits any width (the viewBox scales);
 * `unit` follows each value.
 */
export function BarChart({ title, items, unit = '', empty = 'Nothing to show yet.' }) {
  if (!items.length) return html`<figure class="chart"><figcaption>${title}</figcaption><p class="muted">${empty}</p></figure>`;
  const max = Math.max(1, ...items.map((i) => i.value ?? 0));
  const row = 28;
  const height = items.length * row + 4;
  return html`<figure class="chart">
    <figcaption>${title}</figcaption>
    <svg viewBox="0 0 400 ${height}" role="img" aria-label=${title} preserveAspectRatio="xMinYMin meet">
      ${items.map(
        (it, i) => html`<g key=${it.label + i} transform="translate(0 ${i * row + 2})">
          <text x="0" y="11" class="chart-label">${it.label.length > 40 ? it.label.slice(0, 39) + '…' : it.label}</text>
          <rect x="0" y="14" height="10" rx="2" width=${it.value == null ? 0 : Math.max(1, (it.value / max) * 300)} class="chart-bar"></rect>
          <text x=${(it.value == null ? 0 : (it.value / max) * 300) + 6} y="23" class="chart-value">${it.value == null ? it.note ?? '—' : fmt(it.value) + unit}</text>
        </g>`,
      )}
    </svg>
  </figure>`;
}

/** Vertical columns over time: [{ label, value }], labels under the first and last column. */
export function ColumnChart({ title, points, unit = '' }) {
  if (!points.length) return html`<figure class="chart"><figcaption>${title}</figcaption><p class="muted">No points in this range.</p></figure>`;
  const max = Math.max(1, ...points.map((p) => p.value));
  const w = 800 / points.length;
  return html`<figure class="chart columns">
    <figcaption>${title} (max ${fmt(max)}${unit})</figcaption>
    <svg viewBox="0 0 800 200" role="img" aria-label=${title} preserveAspectRatio="xMinYMin meet">
      ${points.map(
        (p, i) => html`<rect key=${i} x=${i * w + 1} width=${Math.max(1, w - 2)} y=${175 - (p.value / max) * 165} height=${(p.value / max) * 165} class="chart-bar">
          <title>${p.label}: ${fmt(p.value)}${unit}</title>
        </rect>`,
      )}
      <text x="0" y="195" class="chart-label">${points[0].label}</text>
      <text x="800" y="195" text-anchor="end" class="chart-label">${points[points.length - 1].label}</text>
    </svg>
  </figure>`;
}
