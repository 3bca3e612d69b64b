/**
 * A small hand-written SVG: end-to-end latency (p50, p99, max) against the offered rate, latency on a log
 * scale, with the 1 s p99 target drawn across, so the knee shows where the lines turn up.
 */
export interface ChartPoint {
  rate: number;
  p50: number;
  p99: number;
  max: number;
  held: boolean;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function latencyChart(points: ChartPoint[], { title, subtitle = '' }: { title: string; subtitle?: string }): string {
  const W = 760;
  const H = 440;
  const m = { left: 70, right: 150, top: 56, bottom: 56 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const sorted = [...points].sort((a, b) => a.rate - b.rate);
  const maxRate = Math.max(1000, ...sorted.map((p) => p.rate)) * 1.05;
  const finite = sorted.flatMap((p) => [p.p50, p.p99, p.max]).filter((v) => Number.isFinite(v) && v > 0);
  const yMin = 10 ** Math.floor(Math.log10(Math.max(1, Math.min(10, ...finite))));
  const yMax = 10 ** Math.ceil(Math.log10(Math.max(2000, ...finite)));
  const x = (rate: number) => m.left + (rate / maxRate) * pw;
  const y = (ms: number) => {
    const v = Math.min(yMax, Math.max(yMin, Number.isFinite(ms) ? ms : yMax));
    return m.top + ph - ((Math.log10(v) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * ph;
  };
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${m.left}" y="24" font-size="15" font-weight="bold">${esc(title)}</text>`);
  if (subtitle) out.push(`<text x="${m.left}" y="42" fill="#555">${esc(subtitle)}</text>`);
  // y grid: decades
  for (let d = yMin; d <= yMax; d *= 10) {
    out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${y(d)}" y2="${y(d)}" stroke="#ddd"/>`);
    out.push(`<text x="${m.left - 8}" y="${y(d) + 4}" text-anchor="end">${d >= 1000 ? `${d / 1000} s` : `${d} ms`}</text>`);
  }
  // x grid
  const step = maxRate > 20000 ? 5000 : maxRate > 8000 ? 2000 : 1000;
  for (let r = 0; r <= maxRate; r += step) {
    out.push(`<line x1="${x(r)}" x2="${x(r)}" y1="${m.top}" y2="${m.top + ph}" stroke="#eee"/>`);
    out.push(`<text x="${x(r)}" y="${m.top + ph + 18}" text-anchor="middle">${r >= 1000 ? `${r / 1000}k` : r}</text>`);
  }
  out.push(`<text x="${m.left + pw / 2}" y="${H - 14}" text-anchor="middle">offered rate (source events/s)</text>`);
  out.push(`<text transform="translate(18 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">source → consumer handler latency</text>`);
  out.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  // target
  out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${y(1000)}" y2="${y(1000)}" stroke="#c00" stroke-dasharray="6 4"/>`);
  out.push(`<text x="${m.left + pw + 6}" y="${y(1000) + 4}" fill="#c00">p99 target 1 s</text>`);
  const series: { key: 'p50' | 'p99' | 'max'; color: string; label: string }[] = [
    { key: 'p50', color: '#1f77b4', label: 'p50' },
    { key: 'p99', color: '#d62728', label: 'p99' },
    { key: 'max', color: '#999999', label: 'max' },
  ];
  series.forEach((s, i) => {
    const path = sorted.map((p, k) => `${k === 0 ? 'M' : 'L'}${x(p.rate).toFixed(1)},${y(p[s.key]).toFixed(1)}`).join(' ');
    out.push(`<path d="${path}" fill="none" stroke="${s.color}" stroke-width="${s.key === 'max' ? 1 : 2}"${s.key === 'max' ? ' stroke-dasharray="3 3"' : ''}/>`);
    for (const p of sorted) {
      const v = p[s.key];
      const label = Number.isFinite(v) ? (v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${Math.round(v)} ms`) : 'lost';
      out.push(
        `<circle cx="${x(p.rate).toFixed(1)}" cy="${y(v).toFixed(1)}" r="${s.key === 'max' ? 2.5 : 4}" fill="${p.held || s.key !== 'p99' ? s.color : 'white'}" stroke="${s.color}"><title>${p.rate}/s ${s.label} ${label}</title></circle>`,
      );
    }
    const ly = m.top + 20 + i * 18;
    out.push(`<line x1="${m.left + pw + 10}" x2="${m.left + pw + 30}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"/>`);
    out.push(`<text x="${m.left + pw + 36}" y="${ly + 4}">${s.label}</text>`);
  });
  out.push(`<text x="${m.left + pw + 10}" y="${m.top + 86}" fill="#555">hollow p99: not held</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
