import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../observability/logger.js';

/**
 * The bearer token for writes. ADMIN_TOKEN wins; otherwise the token kept beside the flag store
 * (mode 0600, where `npm run flag` finds it); otherwise a new one, generated and printed once.
 */
export async function resolveAdminToken(options: {
  configured: string | undefined;
  file: string;
  logger: Logger;
}): Promise<string> {
  if (options.configured) return options.configured;
  try {
    const kept = (await readFile(options.file, 'utf8')).trim();
    if (kept.length >= 16) return kept;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const token = randomBytes(24).toString('base64url');
  await mkdir(path.dirname(options.file), { recursive: true });
  // 'w' after a failed read: an unreadable or too short file is replaced.
  await writeFile(options.file, token + '\n', { mode: 0o600 });
  options.logger.warn(
    { file: options.file },
    `Generated an admin token (shown this once; kept in ${options.file}, mode 0600, where \`npm run flag\` reads it): ${token}`,
  );
  return token;
}

/** Compares in constant time: the digests have one length whatever was presented. */
export function tokenMatcher(expected: string): (presented: string | undefined) => boolean {
  const expectedDigest = createHash('sha256').update(expected).digest();
  return (presented) => {
    if (!presented) return false;
    return timingSafeEqual(createHash('sha256').update(presented).digest(), expectedDigest);
  };
}
