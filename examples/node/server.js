// A Node.js HTTP server for clusterd: serves the listening socket it inherits, and drains on
// SIGTERM (stops accepting, lets requests in flight finish, then exits 0).
//
// Node does not read LISTEN_FDS itself: the fd comes from the socket-activation variables, the
// listener named "http" in LISTEN_FDNAMES (fd 3 is the first listener).
'use strict';
const http = require('http');

function inheritedFd(name) {
  const env = process.env;
  // LISTEN_PID names the process the sockets are meant for; anyone else must not use them.
  if (env.LISTEN_PID !== String(process.pid) || !(Number(env.LISTEN_FDS) >= 1)) {
    console.error('server.js: no socket from clusterd (LISTEN_PID/LISTEN_FDS not for this process)');
    process.exit(2);
  }
  const names = (env.LISTEN_FDNAMES || '').split(':');
  const index = names.indexOf(name);
  return 3 + (index >= 0 ? index : 0);
}

const server = http.createServer((request, response) => {
  const body = `hello from pid ${process.pid} (worker ${process.env.CLUSTERD_WORKER_ID} ` +
               `of ${process.env.CLUSTERD_WORKERS})\n`;
  response.writeHead(200, {'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body)});
  response.end(body);
});

// The socket is already bound and listening: listen({fd}) adopts it without binding again.
server.listen({fd: inheritedFd('http')});

process.on('SIGTERM', () => {
  // close() stops accepting and calls back once every connection has ended; idle keep-alive
  // connections are closed now rather than left to time out. close() releases only this
  // process's reference to the socket: the other workers and clusterd keep serving it.
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});
