import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import type { TrustProxyFn } from '../access/client-address.js';
import { ConfigError, type Config } from '../config.js';
import type { Realtime } from '../realtime/sockets.js';

export interface Listening {
  httpServer: Server;
  url: string;
  port: number;
  /** Browsers told to reconnect elsewhere, then requests drained: all connections closed after the grace period. */
  drain(): Promise<void>;
}

/** Listens on HOST:PORT; a real conflict is one line naming the variable to set, never a stack trace. */
async function listen(httpServer: Server, config: Config): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EADDRINUSE')
        reject(
          new ConfigError(
            `PORT ${config.port} is in use on ${config.host}: set PORT to a free port (e.g. PORT=${config.port + 2} npm start).`,
          ),
        );
      else if (error.code === 'EADDRNOTAVAIL')
        reject(
          new ConfigError(`HOST ${config.host} is not an address of this machine: set HOST (e.g. HOST=127.0.0.1).`),
        );
      else reject(error);
    });
    httpServer.listen(config.port, config.host, () => resolve());
  });
}

/**
 * Browsers first: their transports close and their clients reconnect (to another instance). Then
 * stop accepting and drain: keep-alive connections go idle as their last response ends, and are
 * closed as they do; every connection is closed once the grace period is over.
 */
async function drain(httpServer: Server, realtime: Realtime, graceMs: number): Promise<void> {
  realtime.disconnectAll();
  const drained = new Promise<void>((resolve) => httpServer.close(() => resolve()));
  const sweep = setInterval(() => httpServer.closeIdleConnections(), 25);
  httpServer.closeIdleConnections();
  const grace = setTimeout(() => httpServer.closeAllConnections(), graceMs);
  await realtime.close();
  await drained;
  clearInterval(sweep);
  clearTimeout(grace);
}

/** One HTTP server for the app and Socket.IO (its requests reach Socket.IO first), listening. */
export async function startHttp(config: Config, app: Express, realtime: Realtime): Promise<Listening> {
  const httpServer = createServer(app);
  realtime.attach(httpServer, app.get('trust proxy fn') as TrustProxyFn);
  await listen(httpServer, config);
  const address = httpServer.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    httpServer,
    url: `http://${host}:${address.port}`,
    port: address.port,
    drain: () => drain(httpServer, realtime, config.shutdownGraceMs),
  };
}
