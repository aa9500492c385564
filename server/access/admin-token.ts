import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../observability/logger.js';
import { newToken } from './tokens.js';

/**
 * The token named `admin` (full access). ADMIN_TOKEN wins; otherwise the token kept beside the flag
 * store (mode 0600, where `npm run flag` finds it); otherwise a new one, kept there. A new one is
 * `generated`: the caller shows it once, where a person sees it (the console), not in the
 * structured log, which goes to collectors that many people read.
 */
export async function resolveAdminToken(options: {
  configured: string | undefined;
  file: string;
  logger: Logger;
}): Promise<{ token: string; generated: boolean }> {
  if (options.configured) return { token: options.configured, generated: false };
  try {
    const kept = (await readFile(options.file, 'utf8')).trim();
    if (kept.length >= 16) return { token: kept, generated: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  // The named tokens' form (`ks_` and 256 bits), which log redaction and secret scanners know.
  const token = newToken();
  await mkdir(path.dirname(options.file), { recursive: true, mode: 0o700 });
  // 'w' after a failed read: an unreadable or too short file is replaced.
  await writeFile(options.file, token + '\n', { mode: 0o600 });
  options.logger.warn(
    { file: options.file },
    `Generated an admin token: shown once on the console, and kept in ${options.file} (mode 0600), where \`npm run flag\` reads it`,
  );
  return { token, generated: true };
}
