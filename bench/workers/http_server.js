// http_server.js: the benchmark HTTP server in Node.js, written the way a user would write it.
//
// Listener: fd 3 when LISTEN_FDS >= 1 and LISTEN_PID is this process (clusterd, systemd socket
// activation); otherwise --port N on --host (default 127.0.0.1). Under Node's cluster module the
// same listen(port) call is shared through the cluster primary. `--reuse-port` binds with
// SO_REUSEPORT (listen's `reusePort`, Node >= 22.12 / 23.1), so copies started by hand share the
// port; older Nodes would silently ignore the option and fail with EADDRINUSE, so it exits 2.
//
// Serves `GET /` (and HEAD) with a short fixed body and an `X-Worker-Pid` header, like
// http_server.c. When NOTIFY_SOCKET is set (clusterd --ready notify) it reports READY=1 with
// `systemd-notify --ready` once it listens (Node has no unix datagram sockets of its own).
//
// SIGTERM/SIGINT: server.close() (stop accepting; since Node 19 it also closes the keep-alive
// connections idle at that moment), and from then on every response says `Connection: close`:
// without that, a connection that was busy when close() ran stays keep-alive and is served until
// the client stops using it. Exit 0 when the last connection is gone, or after --drain-timeout-ms.
//
// Usage: node http_server.js [--port N [--reuse-port]] [--host ADDR] [--drain-timeout-ms N]
'use strict';
const http = require('http');
const { execFileSync } = require('child_process');

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const pid = process.pid;
const body = `hello from pid ${pid}\n`;
const drainTimeoutMs = Number(option('--drain-timeout-ms', '10000'));

let stopping = false;

const server = http.createServer((request, response) => {
  if (stopping) response.setHeader('Connection', 'close');
  const headOnly = request.method === 'HEAD';
  if (request.method !== 'GET' && !headOnly) {
    response.writeHead(405, { 'Content-Type': 'text/plain', 'X-Worker-Pid': pid });
    response.end('Method Not Allowed');
    return;
  }
  if (request.url !== '/') {
    response.writeHead(404, { 'Content-Type': 'text/plain', 'X-Worker-Pid': pid });
    response.end(headOnly ? undefined : 'Not Found');
    return;
  }
  response.writeHead(200, {
    'Content-Type': 'text/plain',
    'Content-Length': Buffer.byteLength(body),
    'X-Worker-Pid': pid,
  });
  response.end(headOnly ? undefined : body);
});

function inheritedListener() {
  const fds = Number(process.env.LISTEN_FDS || '0');
  return fds >= 1 && Number(process.env.LISTEN_PID) === pid;
}

function notifyReady() {
  if (!process.env.NOTIFY_SOCKET) return;
  try {
    // clusterd accepts READY=1 from the worker or its descendants, so our child may send it.
    execFileSync('systemd-notify', ['--ready'], { stdio: 'inherit' });
  } catch (error) {
    console.error(`http_server.js[${pid}]: systemd-notify --ready failed: ${error.message}`);
  }
}

function hasReusePort() {
  const [major, minor] = process.versions.node.split('.').map(Number);
  return major > 22 || (major === 22 && minor >= 12);
}

if (inheritedListener() && !process.argv.includes('--reuse-port')) {
  server.listen({ fd: 3 }, notifyReady);
} else {
  const port = Number(option('--port', 'NaN'));
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error('usage: node http_server.js [--port N [--reuse-port]] [--host ADDR] [--drain-timeout-ms N]');
    console.error('  without LISTEN_FDS/LISTEN_PID for this process, --port is required');
    process.exit(2);
  }
  const reusePort = process.argv.includes('--reuse-port');
  if (reusePort && !hasReusePort()) {
    console.error(`http_server.js: --reuse-port needs Node >= 22.12 or 23.1 (listen's reusePort); this is ${process.version}`);
    process.exit(2);
  }
  server.listen({ port, host: option('--host', '127.0.0.1'), reusePort }, notifyReady);
}

function stop() {
  if (stopping) return;
  stopping = true;
  server.close(() => process.exit(0));
  setTimeout(() => {
    console.error(`http_server.js[${pid}]: drain timeout, exiting with connections open`);
    process.exit(0);
  }, drainTimeoutMs).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
