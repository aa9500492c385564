import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolveAdminToken } from '../../server/access/admin-token.js';
import { capturingLogger } from '../helpers/app.js';

describe('the admin token', () => {
  let dir: string;
  let file: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'killswitch-admin-token-'));
    file = path.join(dir, 'store', 'admin-token');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const resolve = (configured: string | undefined) => {
    const { logger, lines } = capturingLogger('warn');
    return { lines, resolved: resolveAdminToken({ configured, file, logger }) };
  };

  it('is ADMIN_TOKEN when it is set: no file is read or written', async () => {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, 'a-token-kept-in-the-file\n');
    const { resolved, lines } = resolve('from-the-environment-0123');
    expect(await resolved).toEqual({ token: 'from-the-environment-0123', generated: false });
    expect(await readFile(file, 'utf8')).toBe('a-token-kept-in-the-file\n');
    expect(lines).toEqual([]);
  });

  it("is generated at the first start in the named tokens' form (ks_ and 256 random bits), kept in a new folder for its owner only, and said where (not what)", async () => {
    const { resolved, lines } = resolve(undefined);
    const { token, generated } = await resolved;
    expect(generated).toBe(true);
    expect(token).toMatch(/^ks_[A-Za-z0-9_-]{43}$/);
    expect(await readFile(file, 'utf8')).toBe(`${token}\n`);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      level: 40,
      file,
      msg: expect.stringContaining(`kept in ${file} (mode 0600)`),
    });
    expect(lines[0]).not.toContain(token);

    // The next start finds it, and says nothing.
    const again = resolve(undefined);
    expect(await again.resolved).toEqual({ token, generated: false });
    expect(again.lines).toEqual([]);
    // A second start of its own makes a different one.
    await rm(file);
    expect((await resolve(undefined).resolved).token).not.toBe(token);
  });

  it('is the kept one, trimmed, from 16 characters; a shorter or empty file is replaced by a new one', async () => {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, '  sixteen-chars-ok  \n');
    expect(await resolve(undefined).resolved).toEqual({ token: 'sixteen-chars-ok', generated: false });

    for (const kept of ['fifteen-chars-x', '   ', '']) {
      await writeFile(file, kept, { mode: 0o644 });
      const { token, generated } = await resolve(undefined).resolved;
      expect(generated).toBe(true);
      expect(token).toMatch(/^ks_[A-Za-z0-9_-]{43}$/);
      expect((await readFile(file, 'utf8')).trim()).toBe(token);
    }
  });

  it('does not paper over a file it cannot read: the start fails with the reason', async () => {
    // A folder where the file should be: not "missing", so nothing is generated over it.
    await mkdir(file, { recursive: true });
    await expect(resolve(undefined).resolved).rejects.toMatchObject({ code: 'EISDIR' });
    // A file where its folder should be: the reason is the read's, not that of a write tried after it.
    await rm(path.dirname(file), { recursive: true });
    await writeFile(path.dirname(file), 'a file, not a folder');
    await expect(resolve(undefined).resolved).rejects.toMatchObject({ code: 'ENOTDIR', syscall: 'open' });
  });
});
