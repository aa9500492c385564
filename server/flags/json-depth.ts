/**
 * How deep a JSON value nests, counted without recursion, stopping once past `limit`: a hostile
 * body of a few KB of nested arrays must cost a loop, never the stack (zod, the merge patch and
 * flagd's compiler all recurse).
 */
export function nestsDeeperThan(value: unknown, limit: number): boolean {
  const pending: [unknown, number][] = [[value, 1]];
  while (pending.length > 0) {
    const [node, depth] = pending.pop()!;
    if (node === null || typeof node !== 'object') continue;
    if (depth > limit) return true;
    for (const child of Object.values(node)) pending.push([child, depth + 1]);
  }
  return false;
}

/** How deep a flag definition may nest: far beyond any rule a person writes (if-else chains of dozens). */
export const MAX_FLAG_DEPTH = 64;
