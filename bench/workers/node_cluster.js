// node_cluster.js: the reference for clusterd's reload benchmark, a Node.js cluster primary as
// Node's documentation shows it, with the rolling restart a user writes on top of it.
//
// Forks N workers running http_server.js, which call server.listen(port) (shared through the
// primary, Node's default round-robin scheduling). A worker that dies is forked again.
// SIGHUP: for each old worker in turn, fork a replacement, wait for its 'listening' event, then
// send the old one SIGTERM (http_server.js then drains: server.close(), exit), and go on with the
// next. The reload is finished when every replacement listens and every old worker has exited:
// that prints `reload finished generation=G`. SIGTERM/SIGINT: SIGTERM to every worker, exit when
// they are gone.
//
// Usage: node node_cluster.js --workers N --port P [--host ADDR] [--grace-ms N]
'use strict';
const cluster = require('cluster');
const path = require('path');

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const count = Number(option('--workers', '2'));
const port = Number(option('--port', 'NaN'));
const host = option('--host', '127.0.0.1');
const graceMs = Number(option('--grace-ms', '30000'));
if (!Number.isInteger(count) || count < 1 || !Number.isInteger(port)) {
  console.error('usage: node node_cluster.js --workers N --port P [--host ADDR] [--grace-ms N]');
  process.exit(2);
}

function log(text) {
  console.error(`node_cluster[${process.pid}]: ${text}`);
}

cluster.setupPrimary({
  exec: path.join(__dirname, 'http_server.js'),
  args: ['--port', String(port), '--host', host],
});

let generation = 1;
const slots = new Map();     // slot -> current worker
const retiring = new Set();  // workers sent SIGTERM by a reload or a stop
let reloading = false;
let reloadQueued = false;
let stopping = false;

function fork(slot) {
  const worker = cluster.fork({ NODE_CLUSTER_SLOT: String(slot), NODE_CLUSTER_GENERATION: String(generation) });
  worker.slot = slot;
  worker.generation = generation;
  return worker;
}

function retire(worker) {
  retiring.add(worker);
  worker.process.kill('SIGTERM');
  const timer = setTimeout(() => worker.process.kill('SIGKILL'), graceMs);
  timer.unref();
  worker.once('exit', () => clearTimeout(timer));
}

function listening(worker) {
  return new Promise((resolve, reject) => {
    const onExit = (code, signal) => reject(new Error(`new worker pid=${worker.process.pid} exited (${signal || code}) before listening`));
    worker.once('exit', onExit);
    worker.once('listening', () => {
      worker.removeListener('exit', onExit);
      resolve();
    });
  });
}

function oldExited(workers) {
  return Promise.all(workers.map((w) => (w.isDead() ? null : new Promise((resolve) => w.once('exit', resolve)))));
}

async function reload() {
  reloading = true;
  generation += 1;
  const started = process.hrtime.bigint();
  log(`reload started generation=${generation} workers=${slots.size}`);
  const old = [];
  try {
    for (const [slot, previous] of [...slots]) {
      if (stopping) return;
      const replacement = fork(slot);
      await listening(replacement);
      slots.set(slot, replacement);
      old.push(previous);
      retire(previous);
    }
    await oldExited(old);
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    log(`reload finished generation=${generation} workers=${slots.size} duration_ms=${ms.toFixed(1)}`);
  } catch (error) {
    log(`reload abandoned: ${error.message}; the running workers keep serving`);
  } finally {
    reloading = false;
    if (reloadQueued && !stopping) {
      reloadQueued = false;
      reload();
    }
  }
}

cluster.on('listening', (worker, address) => {
  log(`worker listening slot=${worker.slot} gen=${worker.generation} pid=${worker.process.pid} port=${address.port}`);
});

cluster.on('exit', (worker, code, signal) => {
  const status = signal ? `signal:${signal}` : `exit:${code}`;
  log(`worker exited slot=${worker.slot} gen=${worker.generation} pid=${worker.process.pid} status=${status}`);
  if (stopping) {
    if (Object.keys(cluster.workers).length === 0) process.exit(0);
    return;
  }
  if (retiring.delete(worker)) return;
  if (slots.get(worker.slot) === worker) {
    setTimeout(() => { if (!stopping) slots.set(worker.slot, fork(worker.slot)); }, 100);
  }
});

process.on('SIGHUP', () => {
  if (reloading) reloadQueued = true;
  else reload();
});

function stop() {
  if (stopping) return;
  stopping = true;
  log('stopping');
  const workers = Object.values(cluster.workers);
  if (workers.length === 0) process.exit(0);
  for (const worker of workers) if (!retiring.has(worker)) retire(worker);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

for (let slot = 0; slot < count; slot += 1) slots.set(slot, fork(slot));
log(`started workers=${count} port=${port}`);
