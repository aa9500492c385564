import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';

/** A free TCP port on loopback. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
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
    const client = new Redis(this.url, { lazyConnect: true, retryStrategy: () => 50, maxRetriesPerRequest: null });
    client.on('error', () => undefined);
    for (let i = 0; i < 100; i++) {
      try {
        await client.connect().catch(() => undefined);
        if ((await client.ping()) === 'PONG') break;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    client.disconnect();
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
