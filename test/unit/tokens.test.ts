import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createFileTokenStore, tokenFiles } from '../../server/access/token-store.js';
import { ADMIN_TOKEN_NAME, createTokenRegistry, newToken } from '../../server/access/tokens.js';
import { createLogger } from '../../server/observability/logger.js';

const logger = createLogger('silent');

describe('the token registry, on the file store', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'killswitch-tokens-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('waits at close for a use it is still writing: the use is on disk, no lock or temporary file is left', async () => {
    const adminToken = newToken();
    const registry = await createTokenRegistry({ adminToken, store: createFileTokenStore({ dir, logger }), logger });
    const before = Date.now();
    // A first use is written at once (in the background: verify answers without waiting for the disk).
    expect(registry.verify(adminToken)).toMatchObject({ name: ADMIN_TOKEN_NAME, scope: 'full' });
    await registry.close();

    // Closed: nothing of that write is still under way (a stop removes or leaves the folder as it is).
    const usage = JSON.parse(await readFile(tokenFiles(dir).usage, 'utf8')) as Record<string, string>;
    expect(Date.parse(usage[ADMIN_TOKEN_NAME]!)).toBeGreaterThanOrEqual(before - 1000);
    expect((await readdir(dir)).sort()).toEqual([path.basename(tokenFiles(dir).usage)]);
  });
});
