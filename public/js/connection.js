// @ts-check
/**
 * Mirrors the Socket.IO connection on <body data-socket> and in the header pill, for the
 * viewer and for tests alike.
 * @param {import('socket.io-client').Socket} socket
 */
export function showConnection(socket) {
  const label = document.querySelector('.connection-label');
  const set = (/** @type {'connected'|'disconnected'} */ state, /** @type {string} */ text) => {
    document.body.dataset.socket = state;
    if (label) label.textContent = text;
  };
  socket.on('connect', () => set('connected', 'Connected'));
  socket.on('disconnect', () => set('disconnected', 'Reconnecting…'));
  socket.io.on('reconnect_attempt', () => set('disconnected', 'Reconnecting…'));
  socket.on('connect_error', () => set('disconnected', 'Offline, retrying…'));
}
