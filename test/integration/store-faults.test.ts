import { fork } from 'node:child_process';
import { once } from 'node:events';
import { watch } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProviderStatus } from '@openfeature/server-sdk';
import { defaultFlagDocument, KILL_SWITCH } from '../../server/flags/catalog.js';
import { FileBackend } from '../../server/flags/backend-file.js';
import { FlagRepository } from '../../server/flags/repository.js';
import { FlagdEngine } from '../../server/flags/engine.js';
import { readFlagDocument } from '../../server/flags/validate.js';
import { createLogger } from '../../server/observability/logger.js';
import { projectRoot } from '../../server/paths.js';
import { sleep, startTestApp, waitFor, type TestApp } from '../helpers/app.js';

const logger = createLogger('silent');

describe('a crash in the middle of a write', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'crash-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  // 7 s here alone; 40 s with two busy loops beside the whole suite (each start is a process):
  // a timeout three times that.
  it(
    'never leaves a broken or half-written flag file (10 SIGKILLs, half of them mid-write)',
    { timeout: 120_000 },
    async () => {
      const file = path.join(dir, 'flags.json');
      let versionBefore = 0;
      let caughtMidWrite = 0;
      // Each round starts a process (~0.4 s here, up to 2.4 s on a busy machine): 10 rounds, 60 s allowed.
      for (let round = 0; round < 10; round++) {
        const writer = fork(path.join(projectRoot, 'test/helpers/write-forever.mjs'), [file], { stdio: 'ignore' });
        const exited = once(writer, 'exit');
        await once(writer, 'message');
        if (round % 2 === 0) {
          // At a random moment.
          await sleep(5 + Math.random() * 60);
        } else {
          // The moment a write's temp file appears: the rename has not happened yet.
          await new Promise<void>((resolve) => {
            const watcher = watch(dir, (_event, name) => {
              if (name && /^flags\.json\.\d+$/.test(name)) {
                watcher.close();
                resolve();
              }
            });
          });
        }
        writer.kill('SIGKILL');
        await exited;

        if ((await readdir(dir)).some((name) => /\.json\.\d+$/.test(name))) caughtMidWrite++;
        // Whatever moment the kill came, the file is a whole, valid flagd document.
        const document = readFlagDocument(JSON.parse(await readFile(file, 'utf8')));
        expect(document.flags[KILL_SWITCH]).toBeDefined();
        expect(new FlagdEngine().load(document)).toEqual(new Map());
        // And the store starts from it, healthy, at a version that never goes back.
        const store = new FlagRepository(new FileBackend({ file, logger }), logger, defaultFlagDocument);
        await store.start();
        expect(store.status()).toEqual({ status: ProviderStatus.READY });
        const { version } = store.get(KILL_SWITCH)!;
        expect(version).toBeGreaterThanOrEqual(versionBefore);
        versionBefore = version;
        await store.close();
      }
      // Some kills really came in the middle of a write (a temp file was left) ...
      expect(caughtMidWrite).toBeGreaterThan(0);
      // ... and the temp files they left were swept at start-up.
      expect((await readdir(dir)).filter((name) => /\.\d+$/.test(name))).toEqual([]);
      expect(versionBefore).toBeGreaterThan(1);
      console.log(`crash test: 10 kills, ${caughtMidWrite} of them in the middle of a write (a temp file was left)`);
    },
  );
});

describe('concurrent writes through the API', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startTestApp({ API_RATE_LIMIT_PER_MIN: '100000' });
  });
  afterAll(() => app.stop());

  // 50 writers and ~1,000 retried conflicts: ~3 s here, up to 17 s on a busy machine.
  it('50 writers with If-Match (retrying on 412) lose no update', { timeout: 90_000 }, async () => {
    const start = (await app.request(`/api/flags/${KILL_SWITCH}`)).body.version;
    let conflicts = 0;
    const writer = async (i: number) => {
      for (;;) {
        const { body } = await app.request(`/api/flags/${KILL_SWITCH}`);
        const res = await app.patchFlag(
          KILL_SWITCH,
          { variants: { [`w${i}`]: false } },
          { 'if-match': `"${body.version}"` },
        );
        if (res.status === 200) return;
        expect(res.status).toBe(412);
        conflicts++;
      }
    };
    await Promise.all(Array.from({ length: 50 }, (_, i) => writer(i)));
    const after = (await app.request(`/api/flags/${KILL_SWITCH}`)).body;
    expect(after.version).toBe(start + 50);
    expect(Object.keys(after.definition.variants).filter((v) => v.startsWith('w'))).toHaveLength(50);
    console.log(`50 concurrent If-Match writers: ${conflicts} conflicts retried, none lost`);
  });

  it('50 writers without If-Match: the last write wins and every write is audited', async () => {
    const start = (await app.request(`/api/flags/${KILL_SWITCH}`)).body.version;
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        app.patchFlag(KILL_SWITCH, { variants: { last: i % 2 === 0 } }, { 'x-actor': `writer-${i}` }),
      ),
    );
    expect(results.every((r) => r.status === 200)).toBe(true);
    const versions = results.map((r) => r.body.version).sort((a, b) => a - b);
    const after = (await app.request(`/api/flags/${KILL_SWITCH}`)).body;
    // Writes that changed something got a version each; the final state is the highest one's.
    const last = results.find((r) => r.body.version === after.version)!;
    expect(after.definition.variants.last).toBe(last.body.definition.variants.last);
    const changed = new Set(versions).size;
    const audit = (await app.request('/api/audit?limit=500')).body.entries.filter((e: any) => e.version > start);
    expect(audit).toHaveLength(changed);
    expect(after.version).toBe(start + changed);
  });
});

describe('a broken flag file at start-up', () => {
  it('starts with every flag at its safe default and /readyz 503, refuses writes, and recovers when fixed', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'broken-'));
    const file = path.join(dir, 'flags.json');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(file, '{"flags": {"show-avatars-and-reccs": {"state": "ENABLED", ');
    const app = await startTestApp({ FLAGS_FILE: file }, { dir });
    try {
      const ready = await app.request('/readyz');
      expect(ready.status).toBe(503);
      expect(ready.body.detail).toMatch(/not valid JSON/);
      app.simulator!.resetStats();
      expect((await app.request('/?user=maya')).text).toContain('data-show-avatars="false"');
      expect(app.simulator!.stats().total).toBe(0);
      const write = await app.patchFlag(KILL_SWITCH, { state: 'ENABLED' });
      expect(write.status).toBe(503);
      expect(write.body.message).toMatch(/flag file is broken/);

      await writeFile(
        file,
        JSON.stringify({
          flags: { [KILL_SWITCH]: { state: 'ENABLED', variants: { on: true, off: false }, defaultVariant: 'on' } },
        }),
      );
      await waitFor(async () => (await app.request('/readyz')).status === 200, 3000, 'the fixed file to be served');
      expect((await app.request('/?user=maya')).text).toContain('data-show-avatars="true"');
    } finally {
      await app.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
