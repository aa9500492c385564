import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { countReadsInProgress } from '../../server/realtime/reads-in-progress.js';

/** A server that holds every request until the test answers it. */
async function holdingServer() {
  const held: ServerResponse[] = [];
  const arrived: ((response: ServerResponse) => void)[] = [];
  const server = createServer((_request: IncomingMessage, response: ServerResponse) => {
    held.push(response);
    arrived.shift()?.(response);
  });
  const reads = countReadsInProgress(server, '/socket.io/');
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  /** Sends a request and resolves once the server holds it. */
  const send = async (method: string, path: string) => {
    const received = new Promise<ServerResponse>((resolve) => arrived.push(resolve));
    const request = httpRequest({ host: '127.0.0.1', port, method, path, agent: false });
    request.on('response', (response) => response.resume());
    request.on('error', () => undefined); // cut on purpose in one test
    request.end();
    return { response: await received, request };
  };
  return { server, reads, send, held };
}

/** Answers a held request; resolves once the server is done with it. */
async function answer(response: ServerResponse) {
  const closed = once(response, 'close');
  response.end('ok');
  await closed;
}

let servers: ReturnType<typeof createServer>[] = [];
afterEach(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  servers = [];
});

describe('reads in progress (whether a push lets the loop turn between its slices)', () => {
  it('counts a page read from its arrival until it is answered', async () => {
    const h = await holdingServer();
    servers.push(h.server);
    expect(h.reads()).toBe(0);
    const page = await h.send('GET', '/');
    const head = await h.send('HEAD', '/fragments/feed');
    expect(h.reads()).toBe(2);
    await answer(page.response);
    expect(h.reads()).toBe(1);
    await answer(head.response);
    expect(h.reads()).toBe(0);
  });

  it("leaves out writes (a flip is in progress during its own push) and Socket.IO's held polls", async () => {
    const h = await holdingServer();
    servers.push(h.server);
    const write = await h.send('PATCH', '/api/flags/show-avatars-and-reccs');
    const poll = await h.send('GET', '/socket.io/?EIO=4&transport=polling');
    expect(h.held).toHaveLength(2);
    expect(h.reads()).toBe(0);
    await answer(write.response);
    await answer(poll.response);
    expect(h.reads()).toBe(0);
  });

  it('stops counting a read whose browser went away before its answer', async () => {
    const h = await holdingServer();
    servers.push(h.server);
    const page = await h.send('GET', '/');
    expect(h.reads()).toBe(1);
    const closed = once(page.response, 'close');
    page.request.destroy();
    await closed;
    expect(h.reads()).toBe(0);
  });
});
