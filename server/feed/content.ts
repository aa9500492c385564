import type { Recommendation, Recommendations } from '../upstream/recommendations.js';

/**
 * The demo cast and their posts. Written for this app; nothing here comes from the third party.
 * The third party knows these people only by key (for avatars and recommendations).
 */
export interface Person {
  key: string;
  name: string;
  handle: string;
  role: string;
  groups: string[];
  country: string;
}

export const people: readonly Person[] = [
  {
    key: 'maya',
    name: 'Maya Okafor',
    handle: '@maya',
    role: 'Site reliability lead',
    groups: ['staff', 'beta'],
    country: 'NG',
  },
  { key: 'theo', name: 'Theo Lindqvist', handle: '@theo', role: 'Mobile engineer', groups: ['beta'], country: 'SE' },
  { key: 'priya', name: 'Priya Raman', handle: '@priya', role: 'Product manager', groups: ['staff'], country: 'IN' },
  { key: 'jonas', name: 'Jonas Weber', handle: '@jonas', role: 'Photographer', groups: [], country: 'DE' },
  { key: 'lena', name: 'Lena Costa', handle: '@lena', role: 'Community host', groups: ['beta'], country: 'BR' },
  { key: 'sam', name: 'Sam Whitfield', handle: '@sam', role: 'Night-shift baker', groups: [], country: 'GB' },
];

export interface Post {
  id: string;
  author: string;
  minutesAgo: number;
  text: string;
  likes: number;
  replies: number;
}

export const posts: readonly Post[] = [
  {
    id: 'p1',
    author: 'maya',
    minutesAgo: 3,
    likes: 41,
    replies: 7,
    text: 'Launch day. Dashboards up, coffee poured, kill switch within reach. Let the traffic come.',
  },
  {
    id: 'p2',
    author: 'jonas',
    minutesAgo: 11,
    likes: 128,
    replies: 14,
    text: 'Fog over the river at 6 a.m. I stood on the bridge for forty minutes and it was worth every one.',
  },
  {
    id: 'p3',
    author: 'priya',
    minutesAgo: 19,
    likes: 23,
    replies: 5,
    text: 'Reminder: a feature you can turn off in one second is a feature you can ship on a Friday.',
  },
  {
    id: 'p4',
    author: 'sam',
    minutesAgo: 34,
    likes: 96,
    replies: 22,
    text: 'Third batch of sourdough tonight. The starter is older than my car and far more reliable.',
  },
  {
    id: 'p5',
    author: 'theo',
    minutesAgo: 52,
    likes: 17,
    replies: 3,
    text: 'Shipped offline mode for the app. Turns out the hardest part of networking is not having one.',
  },
  {
    id: 'p6',
    author: 'lena',
    minutesAgo: 75,
    likes: 64,
    replies: 31,
    text: 'Tomorrow\u2019s meetup: lightning talks, terrible puns, and the good biscuits. Bring a friend.',
  },
  {
    id: 'p7',
    author: 'maya',
    minutesAgo: 98,
    likes: 12,
    replies: 2,
    text: 'Postmortems are love letters to your future self. Blameless ones are the only kind worth writing.',
  },
  {
    id: 'p8',
    author: 'jonas',
    minutesAgo: 140,
    likes: 203,
    replies: 19,
    text: 'New series: doors of the old town. Forty doors, forty colours, zero explanations.',
  },
];

/** What the panel shows when the third party is off or failing: the same for everyone. */
export const genericRecommendations: readonly Recommendation[] = [
  { id: 'g1', kind: 'topic', title: 'Trending this week', blurb: 'What people across the network are talking about.' },
  {
    id: 'g2',
    kind: 'community',
    title: 'Photography circle',
    blurb: 'A friendly place to share your best shot of the day.',
  },
  {
    id: 'g3',
    kind: 'guide',
    title: 'Getting the most from your feed',
    blurb: 'Five small settings that make a big difference.',
  },
];

/** The recommendations a viewer gets while the third party is killed or failing. */
export const FALLBACK_RECOMMENDATIONS: Recommendations = { source: 'fallback', items: genericRecommendations };

export function findPerson(key: string): Person | undefined {
  return people.find((person) => person.key === key);
}
