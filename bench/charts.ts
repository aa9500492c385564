/**
 * Draws the benchmark charts as SVG images from bench/results/*.json (written by the benches):
 * fan-out p99 against N, and render throughput. Plain SVG, no dependency.
 *   npx tsx bench/charts.ts
 */
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const results = (name: string) => fileURLToPath(new URL(`./results/${name}`, import.meta.url));
const W = 640;
const H = 360;
const M = { top: 48, right: 170, bottom: 56, left: 84 };
const COLORS: Record<string, string> = {
  bare: '#64748b',
  app: '#4f46e5',
  targeted: '#0f9d58',
  killed: '#d93025',
  'live warm': '#4f46e5',
};
const esc = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;');

function frame(title: string, body: string, yLabel: string, xLabel: string) {
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" font-family="system-ui, sans-serif" font-size="12">
<rect width="${W}" height="${H}" fill="#fff"/>
<text x="${M.left}" y="26" font-size="15" font-weight="700" fill="#171b26">${esc(title)}</text>
<text transform="translate(16 ${(H + M.top - M.bottom) / 2}) rotate(-90)" text-anchor="middle" fill="#5d6678">${esc(yLabel)}</text>
<text x="${(W - M.right + M.left) / 2}" y="${H - 14}" text-anchor="middle" fill="#5d6678">${esc(xLabel)}</text>
${body}
</svg>
`;
}

function yAxis(max: number, toY: (v: number) => number, unit = '') {
  const step = niceStep(max / 5);
  let out = '';
  for (let v = 0; v <= max + 1e-9; v += step) {
    const y = toY(v);
    out += `<line x1="${M.left}" x2="${W - M.right}" y1="${y}" y2="${y}" stroke="#e2e6ef"/><text x="${M.left - 8}" y="${y + 4}" text-anchor="end" fill="#5d6678">${+v.toFixed(1)}${unit}</text>`;
  }
  return out;
}

function niceStep(raw: number) {
  const power = 10 ** Math.floor(Math.log10(raw || 1));
  return [1, 2, 5, 10].map((f) => f * power).find((s) => s >= raw) ?? raw;
}

async function fanoutChart() {
  const { rows } = JSON.parse(await readFile(results('fanout.json'), 'utf8')) as {
    rows: { n: number; mode: string; p99: number; p50: number }[];
  };
  const sizes = [...new Set(rows.map((r) => r.n))].sort((a, b) => a - b);
  const max = Math.max(...rows.map((r) => r.p99)) * 1.1;
  const xs = (n: number) =>
    M.left +
    ((Math.log(n) - Math.log(sizes[0]!)) / (Math.log(sizes.at(-1)!) - Math.log(sizes[0]!) || 1)) *
      (W - M.left - M.right);
  const ys = (v: number) => H - M.bottom - (v / max) * (H - M.top - M.bottom);
  let body = yAxis(max, ys, ' ms');
  for (const n of sizes)
    body += `<text x="${xs(n)}" y="${H - M.bottom + 18}" text-anchor="middle" fill="#5d6678">${n.toLocaleString('en')}</text>`;
  const labels: Record<string, string> = {
    bare: 'bare Socket.IO',
    app: 'app: kill (all)',
    targeted: 'app: 50 % rollout',
  };
  ['bare', 'app', 'targeted'].forEach((mode, index) => {
    const points = sizes.map((n) => rows.find((r) => r.n === n && r.mode === mode)).filter(Boolean) as {
      n: number;
      p99: number;
    }[];
    if (!points.length) return;
    const color = COLORS[mode]!;
    body += `<polyline fill="none" stroke="${color}" stroke-width="2.5" ${mode === 'bare' ? 'stroke-dasharray="6 4"' : ''} points="${points.map((p) => `${xs(p.n)},${ys(p.p99)}`).join(' ')}"/>`;
    for (const p of points) body += `<circle cx="${xs(p.n)}" cy="${ys(p.p99)}" r="3.5" fill="${color}"/>`;
    const ly = M.top + 10 + index * 20;
    body += `<line x1="${W - M.right + 12}" x2="${W - M.right + 30}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2.5"/><text x="${W - M.right + 36}" y="${ly + 4}" fill="#171b26" font-size="11">${esc(labels[mode]!)}</text>`;
  });
  await writeFile(
    results('fanout.svg'),
    frame(
      'Flip to every browser: p99 against browsers connected',
      body,
      'p99, flip sent to flag_update',
      'browsers connected (log scale)',
    ),
  );
}

async function renderChart() {
  const { rows } = JSON.parse(await readFile(results('render.json'), 'utf8')) as {
    rows: { name: string; rps: number }[];
  };
  const max = Math.max(...rows.map((r) => r.rps)) * 1.1;
  const ys = (v: number) => H - M.bottom - (v / max) * (H - M.top - M.bottom);
  let body = yAxis(max, ys);
  const width = (W - M.left - M.right) / rows.length;
  const bare = rows.find((r) => r.name === 'bare')?.rps ?? 1;
  rows.forEach((row, i) => {
    const x = M.left + i * width + width * 0.2;
    body += `<rect x="${x}" y="${ys(row.rps)}" width="${width * 0.6}" height="${H - M.bottom - ys(row.rps)}" fill="${COLORS[row.name] ?? '#4f46e5'}" rx="4"/>`;
    body += `<text x="${x + width * 0.3}" y="${ys(row.rps) - 6}" text-anchor="middle" fill="#171b26" font-weight="700">${Math.round(row.rps)} (${(row.rps / bare).toFixed(2)}x)</text>`;
    body += `<text x="${x + width * 0.3}" y="${H - M.bottom + 18}" text-anchor="middle" fill="#5d6678">${esc(row.name === 'bare' ? 'bare Express + EJS' : `feed, ${row.name}`)}</text>`;
  });
  await writeFile(
    results('render.svg'),
    frame('Feed render throughput (autocannon, 20 connections)', body, 'requests per second', ''),
  );
}

await fanoutChart();
await renderChart();
console.log('wrote bench/results/fanout.svg and bench/results/render.svg');
