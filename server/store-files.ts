import { chmod, mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from './observability/logger.js';

/** Where the embedded store keeps its files (flags, versions, audit, tokens): all beside FLAGS_FILE. */
export function storeFiles(flagsFile: string) {
  const dir = path.dirname(flagsFile);
  const stem = path.basename(flagsFile).replace(/\.json$/i, '');
  return {
    dir,
    flags: flagsFile,
    versions: path.join(dir, `${stem}.versions.json`),
    refused: path.join(dir, `${stem}.refused.json`),
    audit: path.join(dir, `${stem}.audit.jsonl`),
    ramp: path.join(dir, `${stem}.ramp.json`),
    adminToken: path.join(dir, 'admin-token'),
  };
}

/** Files holding targeting (it lists people), versions, the audit and tokens: the owner's alone. */
export const PRIVATE_FILE_MODE = 0o600;
const PRIVATE_DIR_MODE = 0o700;

/**
 * The store's folder, made if missing, and private: it holds targeting, the audit (with
 * addresses) and token digests. A folder left readable by others (an older version made it so)
 * is made private; one the process does not own is left as it is, with a warning.
 */
export async function preparePrivateDir(dir: string, logger: Logger): Promise<void> {
  await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  const { mode } = await stat(dir);
  if ((mode & 0o077) === 0) return;
  try {
    await chmod(dir, PRIVATE_DIR_MODE);
    logger.info({ dir }, 'made the flag store folder private (0700)');
  } catch (error) {
    logger.warn({ dir, err: error }, 'the flag store folder is readable by other users and cannot be made private');
  }
}
