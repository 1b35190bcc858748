// An Express app for the Node recipe in docs/servers.md: `app.listen({fd: 3})` serves the socket
// clusterd opened; on SIGTERM it stops accepting, finishes the requests in hand and exits 0.
'use strict';
const express = require('express');

const app = express();
app.get('/', (request, response) => response.send('hello\n'));
const server = app.listen({ fd: 3 });
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});
