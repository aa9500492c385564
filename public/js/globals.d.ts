/** The Socket.IO client, served by our own server at /socket.io/socket.io.min.js (no CDN), as a global. */
declare global {
  interface Window {
    io: typeof import('socket.io-client').io;
    /** The chart library, served by our own server from node_modules/uplot (its own script tag). */
    uPlot: typeof import('uplot');
  }
}

export {};
