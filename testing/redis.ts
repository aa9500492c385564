import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';

/** A free TCP port on loopback. */
/**
 * A free port below Linux's ephemeral range (32768 and up), so that no server listening on port 0
 * meanwhile (every app under test does) can be given it: a Redis started later, in the middle of a
 * test, finds its port still free.
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const server = createServer();
    const bound = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (!bound) continue;
    await new Promise((resolve) => server.close(resolve));
    return port;
  }
}

/**
 * A redis-server of the test's own, on a free port, never the machine's shared one. `stop()` and
 * `start()` kill and restart it on the same port (with its append-only file, so data survives,
 * or without, to test a Redis that comes back empty).
 */
export class TestRedis {
  private child: ChildProcess | undefined;
  private constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly persist: boolean,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async create(options: { persist?: boolean; start?: boolean } = {}): Promise<TestRedis> {
    const redis = new TestRedis(
      await freePort(),
      await mkdtemp(path.join(tmpdir(), 'redis-')),
      options.persist ?? true,
    );
    if (options.start ?? true) await redis.start();
    return redis;
  }

  /** Starts it (again, after stop()); a no-op while it runs. */
  async start(): Promise<void> {
    if (this.child) return;
    const args = [
      '--port',
      String(this.port),
      '--bind',
      '127.0.0.1',
      '--dir',
      this.dir,
      '--save',
      '',
      '--appendonly',
      this.persist ? 'yes' : 'no',
      '--appendfsync',
      'always',
    ];
    this.child = spawn('redis-server', args, { stdio: 'ignore' });
    this.child.once('error', (error) => {
      throw new Error(`cannot start redis-server (apt-get install -y redis-server): ${error.message}`);
    });
    const child = this.child;
    let exited = false;
    child.once('exit', () => (exited = true));
    // Each ping bounded: a server that never came up (its port taken) fails the test at once, not by its timeout.
    const client = new Redis(this.url, { lazyConnect: true, retryStrategy: () => 50, maxRetriesPerRequest: 1 });
    client.on('error', () => undefined);
    try {
      for (let i = 0; ; i++) {
        if (exited) throw new Error(`redis-server exited at start (port ${this.port} taken?)`);
        if (i === 100) throw new Error(`redis-server on port ${this.port} did not answer within 5 s`);
        await client.connect().catch(() => undefined);
        if ((await client.ping().catch(() => undefined)) === 'PONG') break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      client.disconnect();
    }
  }

  async stop(): Promise<void> {
    if (!this.child) return;
    const exited = once(this.child, 'exit');
    this.child.kill('SIGKILL');
    await exited;
    this.child = undefined;
  }

  private readonly clients: Redis[] = [];

  /**
   * A client for looking inside (or for the code under test), disconnected by destroy(). Quiet:
   * its errors while this Redis is stopped are the test's to expect, not to print.
   */
  client(options: RedisOptions = {}): Redis {
    const client = new Redis(this.url, options);
    client.on('error', () => undefined);
    this.clients.push(client);
    return client;
  }

  async destroy(): Promise<void> {
    for (const client of this.clients.splice(0)) client.disconnect();
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}
