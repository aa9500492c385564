import { createHash } from 'node:crypto';

/**
 * What the simulated third party serves: avatars drawn from a person's key, and recommendations
 * picked for a viewer from a small catalogue, in one of three flavours.
 */

const CATALOG = [
  {
    id: 'r1',
    kind: 'community',
    title: 'Incident commanders club',
    blurb: 'Runbooks, war stories and calm voices.',
    for: ['staff'],
  },
  {
    id: 'r2',
    kind: 'event',
    title: 'Chaos engineering night',
    blurb: 'Break things on purpose, with pizza.',
    for: ['staff'],
  },
  {
    id: 'r3',
    kind: 'beta',
    title: 'Try the new composer',
    blurb: 'Drafts, scheduling and a calmer editor.',
    for: ['beta'],
  },
  { id: 'r4', kind: 'beta', title: 'Voice notes (early access)', blurb: 'Say it instead of typing it.', for: ['beta'] },
  { id: 'r5', kind: 'topic', title: 'Street photography', blurb: 'Candid frames from cities everywhere.', for: [] },
  { id: 'r6', kind: 'topic', title: 'Bread & fermentation', blurb: 'Starters, crumb shots and flour talk.', for: [] },
  { id: 'r7', kind: 'person', title: 'Follow Lena Costa', blurb: 'Hosts the best meetups in town.', for: [] },
  { id: 'r8', kind: 'person', title: 'Follow Jonas Weber', blurb: 'Doors, fog and quiet mornings.', for: [] },
  { id: 'r9', kind: 'topic', title: 'Mobile dev corner', blurb: 'Offline-first, battery-kind apps.', for: [] },
  { id: 'r10', kind: 'event', title: 'Sunday market walk', blurb: 'Meet neighbours, buy too many tomatoes.', for: [] },
  { id: 'r11', kind: 'topic', title: 'Product thinking', blurb: 'Small bets, fast feedback, honest metrics.', for: [] },
  {
    id: 'r12',
    kind: 'community',
    title: 'Night owls',
    blurb: 'For everyone awake when the servers are quiet.',
    for: [],
  },
];

function hashOf(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** A symmetric 5x5 identicon, coloured from the person's key: stable, and never the same twice. */
export function identiconSvg(key: string): string {
  const bytes = hashOf(key);
  const hue = Math.round((bytes[0]! / 255) * 360);
  const fg = `hsl(${hue} 62% 46%)`;
  const bg = `hsl(${(hue + 180) % 360} 45% 94%)`;
  const cells: string[] = [];
  for (let row = 0; row < 5; row++) {
    for (let col = 0; col < 3; col++) {
      if (bytes[1 + row * 3 + col]! % 2 === 0) continue;
      for (const x of new Set([col, 4 - col])) {
        cells.push(`<rect x="${10 + x * 16}" y="${10 + row * 16}" width="16" height="16" rx="3"/>`);
      }
    }
  }
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100" width="96" height="96">` +
    `<rect width="100" height="100" fill="${bg}"/><g fill="${fg}">${cells.join('')}</g></svg>`
  );
}

/**
 * Recommendations for one viewer, in one flavour: "classic" puts group-specific items first, then
 * a stable pick of the rest; "trending" ranks events and topics by a shared score; "friends"
 * prefers people to follow and communities.
 */
export function recommendationsFor(user: string, groups: string[], flavour = 'classic') {
  const targeted = CATALOG.filter((item) => item.for.some((group) => groups.includes(group)));
  const general = CATALOG.filter((item) => item.for.length === 0).sort(
    (a, b) => hashOf(user + a.id)[0]! - hashOf(user + b.id)[0]!,
  );
  let picked = [...targeted, ...general];
  if (flavour === 'trending') {
    picked = CATALOG.filter((item) => item.kind === 'event' || item.kind === 'topic').sort(
      (a, b) => hashOf(`trend-${a.id}`)[0]! - hashOf(`trend-${b.id}`)[0]!,
    );
  } else if (flavour === 'friends') {
    picked = [...CATALOG.filter((item) => item.kind === 'person' || item.kind === 'community'), ...picked];
    picked = picked.filter((item, index) => picked.indexOf(item) === index);
  }
  const reasonFor = (kind: string, index: number) => {
    if (flavour === 'trending') return `Trending #${index + 1} today`;
    if (flavour === 'friends' && (kind === 'person' || kind === 'community')) return 'Popular with people you follow';
    return kind === 'beta' ? 'Because you are in the beta' : 'Picked for you';
  };
  return picked.slice(0, 4).map(({ for: _for, ...item }, index) => ({ ...item, reason: reasonFor(item.kind, index) }));
}
