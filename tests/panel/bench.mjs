// The panel's weight and the daemon's cost per connected panel, measured on loopback.
//   node tests/panel/bench.mjs [path/to/vitalwatch]     (scripts/bench-panel builds and runs it)
// Starts the daemon (built-in config: a simulated oximeter at 1 Hz and a cuff, real time
// unless BENCH_SPEED says otherwise) on an ephemeral port, then:
//   1. page weight: the bytes of the page and its assets, raw and gzip-compressed, and of the
//      API answers a panel reads when it (re)connects;
//   2. the daemon's RSS and CPU (from /proc/<pid>/status and /proc/<pid>/stat) over a fixed
//      window with no panel connected, then with BENCH_PANELS (50) connected: each loads what
//      the page loads (/, /panel.js, /panel.css, status, rules, trends) and keeps the event
//      stream open, reading it, as the page does.
// Bounded in time: about 60 s, and it gives up after 180 s.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';

const BIN = path.resolve(process.argv[2] || 'target/release/vitalwatch');
const PANELS = Number(process.env.BENCH_PANELS || 50);
const WINDOW_S = Number(process.env.BENCH_WINDOW_S || 20);
const SPEED = process.env.BENCH_SPEED || '1';
const CLK_TCK = 100; // Linux USER_HZ
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

setTimeout(() => { console.error('bench: gave up after 180 s'); process.exit(2); }, 180000).unref();

function startDaemon(speed) {
  // Each daemon in a directory of its own: the built-in config records to sessions.sqlite in
  // the working directory, and two daemons cannot share one database.
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'vitalwatch-bench-'));
  const child = spawn(BIN, ['run', '--listen', '127.0.0.1:0', '--speed', speed], { cwd, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, VITALWATCH_LOG: 'warn,vitalwatch::daemon=info' } });
  child.on('exit', () => fs.rmSync(cwd, { recursive: true, force: true }));
  return new Promise((resolve, reject) => {
    let buffer = '';
    child.stderr.on('data', (chunk) => {
      buffer += chunk;
      const m = /listening on http:\/\/(\S+)/.exec(buffer);
      if (m) resolve({ child, base: `http://${m[1]}` });
    });
    child.on('exit', (code) => reject(new Error(`vitalwatch exited (${code}): ${buffer}`)));
  });
}

const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
function get(base, path) {
  return new Promise((resolve, reject) => {
    http.get(base + path, { agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks) }));
    }).on('error', reject);
  });
}

function procStats(pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
  const threads = Number(/Threads:\s+(\d+)/.exec(status)[1]);
  // Fields after the command name (which may hold spaces): utime is the 14th field overall.
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return { rssKb, threads, ticks };
}

async function measure(pid, seconds) {
  const a = procStats(pid);
  const t0 = process.hrtime.bigint();
  await sleep(seconds * 1000);
  const b = procStats(pid);
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  return { rssKb: b.rssKb, threads: b.threads, cpuPercent: ((b.ticks - a.ticks) / CLK_TCK / elapsed) * 100, cpuSeconds: (b.ticks - a.ticks) / CLK_TCK, elapsed };
}

// One panel: what the page loads, then the event stream held open and read.
async function openPanel(base, counters) {
  for (const path of ['/', '/panel.js', '/panel.css', '/api/v1/status', '/api/v1/rules', '/api/v1/trends']) {
    const r = await get(base, path);
    if (r.status !== 200) throw new Error(`${path}: HTTP ${r.status}`);
  }
  return new Promise((resolve, reject) => {
    const req = http.get(base + '/api/v1/events', { agent: new http.Agent() }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`events: HTTP ${res.statusCode}`));
      res.on('data', (c) => { counters.bytes += c.length; counters.heartbeats += (c.toString().match(/event: heartbeat/g) || []).length; });
      resolve(req);
    });
    req.on('error', reject);
  });
}

const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;

async function main() {
  console.log(`vitalwatch panel benchmark: ${BIN}, --speed ${SPEED}, ${PANELS} panels, ${WINDOW_S} s windows`);

  // 1. Page weight.
  const { child, base } = await startDaemon(SPEED);
  try {
    await sleep(2000);
    let total = 0, totalGz = 0;
    console.log('\npage weight (what a browser downloads to show the panel):');
    for (const path of ['/', '/panel.js', '/panel.css']) {
      const { body } = await get(base, path);
      const gz = zlib.gzipSync(body, { level: 6 }).length;
      total += body.length; totalGz += gz;
      console.log(`  ${path.padEnd(12)} ${String(body.length).padStart(7)} B  (gzip ${gz} B)`);
    }
    console.log(`  total        ${String(total).padStart(7)} B  = ${kib(total)} (gzip ${kib(totalGz)}); served uncompressed, 3 requests, nothing from elsewhere`);
    for (const path of ['/api/v1/status', '/api/v1/rules']) {
      const { body } = await get(base, path);
      console.log(`  ${path.padEnd(16)} ${String(body.length).padStart(7)} B  (read on every (re)connection)`);
    }

    // 2. Cost per connected panel.
    const pid = child.pid;
    await sleep(3000);
    const idle = await measure(pid, WINDOW_S);
    const counters = { bytes: 0, heartbeats: 0 };
    const requests = [];
    for (let i = 0; i < PANELS; i += 1) requests.push(await openPanel(base, counters));
    await sleep(3000);
    const bytes0 = counters.bytes;
    const beats0 = counters.heartbeats;
    const busy = await measure(pid, WINDOW_S);
    const streamed = (counters.bytes - bytes0) / busy.elapsed / PANELS;
    const beats = (counters.heartbeats - beats0) / busy.elapsed / PANELS;
    for (const r of requests) r.destroy();

    console.log(`\ndaemon cost (pid ${pid}, /proc, ${WINDOW_S} s windows on loopback):`);
    console.log(`  no panel     RSS ${kib(idle.rssKb * 1024)}, CPU ${idle.cpuPercent.toFixed(2)} % of one core (${idle.cpuSeconds.toFixed(2)} s in ${idle.elapsed.toFixed(1)} s), ${idle.threads} threads`);
    console.log(`  ${String(PANELS).padStart(2)} panels    RSS ${kib(busy.rssKb * 1024)}, CPU ${busy.cpuPercent.toFixed(2)} % of one core (${busy.cpuSeconds.toFixed(2)} s in ${busy.elapsed.toFixed(1)} s), ${busy.threads} threads`);
    console.log(`  per panel    RSS +${kib(((busy.rssKb - idle.rssKb) * 1024) / PANELS)}, CPU +${((busy.cpuPercent - idle.cpuPercent) / PANELS).toFixed(3)} % of one core`);
    console.log(`  each panel's event stream: ${(streamed / 1024).toFixed(2)} KiB/s, ${beats.toFixed(2)} heartbeats/s`);

    // The trends answer with a full 30-minute window (a second daemon 600 times faster).
    const fast = await startDaemon('600');
    try {
      await sleep(3500);
      const { body } = await get(fast.base, '/api/v1/trends');
      console.log(`\n/api/v1/trends with a full 30-minute window (oximeter 1 Hz, cuff 5 min): ${kib(body.length)} (gzip ${kib(zlib.gzipSync(body).length)}), read on every (re)connection`);
    } finally {
      fast.child.kill('SIGKILL');
    }
  } finally {
    child.kill('SIGKILL');
  }
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
