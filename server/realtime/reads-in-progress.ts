import type { Server as HttpServer } from 'node:http';

/**
 * Counts the reads (GET, HEAD: pages, fragments, their files) an HTTP server is answering now,
 * those under `skipPath` aside (Socket.IO's: a long-polling GET is held open for seconds, waiting
 * for nothing). Not writes: a flip's own request is one, and it is in progress during its push.
 * A push asks it whether anyone waits for a page before it lets the loop turn between slices.
 */
export function countReadsInProgress(httpServer: HttpServer, skipPath: string): () => number {
  let reads = 0;
  httpServer.on('request', (request, response) => {
    if ((request.method !== 'GET' && request.method !== 'HEAD') || request.url?.startsWith(skipPath)) return;
    reads++;
    response.once('close', () => reads--);
  });
  return () => reads;
}
