// A tiny Node.js HTTP server for the real-server tests: it serves the listening socket clusterd
// passes on, with `server.listen({fd})` (Node does not parse LISTEN_FDS itself).
//
// Usage: node node_server.js [FD]   (default: 3, the first inherited listener)
'use strict';
const http = require('http');

const fd = Number(process.argv[2] || '3');
if (!Number.isInteger(fd) || fd < 3) {
  console.error(`node_server: expected an fd number >= 3, found ${process.argv[2]}`);
  process.exit(2);
}

const server = http.createServer((request, response) => {
  const body = JSON.stringify({
    server: 'node',
    pid: process.pid,
    ppid: process.ppid,
    slot: process.env.CLUSTERD_WORKER_ID,
    fd,
    listen_fds: process.env.LISTEN_FDS,
    listen_fdnames: process.env.LISTEN_FDNAMES,
  });
  response.writeHead(200, {'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body)});
  response.end(body);
});
server.listen({fd});
