import { createServer, connect, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A load balancer in front of several instances, as far as a test needs one: each TCP connection
 * goes to the first instance that accepts it, so that when one dies (its port refuses), its pages'
 * reconnections land on the next. Loopback only.
 */
export async function startFailoverProxy(targets: string[]): Promise<{ url: string; close(): Promise<void> }> {
  const open = new Set<Socket>();
  const ports = targets.map((target) => Number(new URL(target).port));
  const server = createServer((client) => {
    open.add(client);
    client.once('close', () => open.delete(client));
    client.on('error', () => client.destroy());
    const attempt = (index: number) => {
      if (index >= ports.length) return void client.destroy();
      const upstream = connect(ports[index]!, '127.0.0.1');
      let connected = false;
      upstream.on('error', () => {
        upstream.destroy();
        // Refused: that instance is down, the next one is asked. Cut off later: so is the client.
        if (connected) client.destroy();
        else attempt(index + 1);
      });
      upstream.once('connect', () => {
        connected = true;
        open.add(upstream);
        upstream.once('close', () => {
          open.delete(upstream);
          client.destroy();
        });
        client.once('close', () => upstream.destroy());
        client.pipe(upstream).pipe(client);
      });
    };
    attempt(0);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
