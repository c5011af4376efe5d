// Browser tests of the vitalwatch bedside panel, one case per run:
//   node panel.test.mjs <vitals|alarm|actions|offline>
// Run by tests/panel.rs, which starts the daemon (VITALWATCH_URL) and answers `@@control`
// requests (stop, resume, kill, restart the daemon) on this script's stdin. Prints
// `PASS <case>` and exits 0 when every check holds; anything else is a failure.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';

const BASE = process.env.VITALWATCH_URL;
const CHROMIUM = process.env.VITALWATCH_CHROMIUM || '/usr/bin/chromium';
const SCREENSHOTS = process.env.VITALWATCH_SCREENSHOTS;
const TOKEN = process.env.VITALWATCH_TOKEN;
const CASE = process.argv[2];
if (!BASE) fail('VITALWATCH_URL is not set');

// ------------------------------------------------------------------ helpers
function log(...args) { console.log(...args); }
function fail(message) {
  console.log(`FAIL ${CASE}: ${message}`);
  process.exit(1);
}
function check(condition, message) {
  if (!condition) throw new Error(message);
  log(`  ok: ${message}`);
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Control requests to tests/panel.rs, one JSON line each way.
const answers = [];
const waiting = [];
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const next = waiting.shift();
  if (next) next(JSON.parse(line)); else answers.push(JSON.parse(line));
});
async function control(action) {
  console.log(`@@control ${JSON.stringify({ action })}`);
  return answers.length ? answers.shift() : new Promise((resolve) => waiting.push(resolve));
}

async function api(p, { method = 'GET', body, token } = {}) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(BASE + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let json = null;
  try { json = await response.json(); } catch (_) { /* not JSON */ }
  return { status: response.status, body: json };
}

async function launch() {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vitalwatch-panel-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=user-gesture-required'],
  });
  return { context, close: async () => { await context.close(); fs.rmSync(userDataDir, { recursive: true, force: true }); } };
}

async function openPanel(context, name) {
  const page = await context.newPage();
  page.on('pageerror', (e) => log(`[${name} pageerror] ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') log(`[${name} console] ${m.text()}`); });
  page.requests = [];
  page.on('request', (r) => page.requests.push({ url: r.url(), at: Date.now() }));
  const response = await page.goto(BASE + '/');
  check(response.status() === 200, `${name}: GET / answers 200`);
  // Online, and drawn so (the overlay goes in the same frame as everything else is drawn).
  await waitFor(page, () => window.vitalwatchPanel && window.vitalwatchPanel.online && document.querySelector('#offline').hidden, 10000, `${name}: the panel comes online`);
  return page;
}

async function waitFor(page, fn, timeout, what, arg) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 50 });
  } catch (e) {
    const text = await page.evaluate(() => document.body.innerText).catch(() => '(page unavailable)');
    throw new Error(`timed out after ${timeout} ms waiting until ${what}\n--- page text ---\n${text}\n---`);
  }
  log(`  ok: ${what}`);
}

async function screenshot(page, name) {
  if (!SCREENSHOTS) return;
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, name) });
  log(`  screenshot ${path.join(SCREENSHOTS, name)}`);
}

const text = (page, selector) => page.locator(selector).first().evaluate((n) => n.textContent);
const count = (page, selector) => page.locator(selector).count();
const style = (page, selector, props) => page.evaluate(([s, p]) => {
  const node = document.querySelector(s);
  if (!node) return null;
  const cs = getComputedStyle(node);
  return Object.fromEntries(p.map((k) => [k, cs[k]]));
}, [selector, props]);

// The element's animation: name, period (ms), iterations, and a sampling of its background
// colour over `ms`, to see it flash with the right duty.
async function flashing(page, selector, ms) {
  return page.evaluate(async ([s, ms]) => {
    const node = document.querySelector(s);
    const anim = node.getAnimations()[0];
    const timing = anim ? anim.effect.getComputedTiming() : null;
    const samples = [];
    const t0 = performance.now();
    while (performance.now() - t0 < ms) {
      samples.push(getComputedStyle(node).backgroundColor);
      await new Promise((r) => setTimeout(r, 10));
    }
    const counts = {};
    for (const c of samples) counts[c] = (counts[c] || 0) + 1;
    return {
      name: anim ? anim.animationName : null,
      period: timing ? timing.duration : null,
      iterations: timing ? timing.iterations : null,
      easing: timing ? timing.easing : null,
      counts,
      n: samples.length,
    };
  }, [selector, ms]);
}

function checkFlash(result, { name, period, colours }) {
  check(result.name === name, `animation ${result.name} is ${name}`);
  check(Math.abs(result.period - period) < 1, `flash period ${result.period} ms is ${period} ms (${1000 / period} Hz)`);
  check(result.iterations === Infinity, 'it flashes for as long as it lasts');
  const shares = colours.map((c) => (result.counts[c] || 0) / result.n);
  check(shares.every((x) => x > 0.3 && x < 0.7),
    `it alternates ${colours.join(' / ')} with about 50 % duty (${shares.map((x) => Math.round(x * 100) + ' %').join(' / ')}; ${JSON.stringify(result.counts)})`);
}

const RED = 'rgb(255, 32, 32)';
const DARK_RED = 'rgb(74, 0, 0)';
const YELLOW = 'rgb(255, 212, 0)';
const DARK_YELLOW = 'rgb(61, 51, 0)';
const CYAN = 'rgb(0, 216, 255)';
const GREY = 'rgb(91, 99, 105)';

// -------------------------------------------------------------------- cases
const cases = {};

// Vitals appear and update; a silent device, then a lost one, greys out with its age.
cases.vitals = async () => {
  const { context, close } = await launch();
  try {
    check((await api('/api/v1/session', { method: 'POST', body: { id: 'KAP-PANEL-V' } })).status === 201, 'a session starts (no tokens configured)');
    const page = await openPanel(context, 'panel');
    await waitFor(page, () => /^\d+$/.test(document.querySelector('#tile-spo2 .value').textContent), 5000, 'the SpO2 tile shows a number');
    const spo2 = Number(await text(page, '#tile-spo2 .value'));
    check(spo2 >= 90 && spo2 <= 100, `SpO2 ${spo2} is the scenario's (about 97)`);
    const pulses = new Set();
    const ages = [];
    for (let i = 0; i < 20; i += 1) {
      pulses.add(await text(page, '#tile-pulse .value'));
      ages.push(await page.evaluate(() => Number(document.querySelector('#tile-spo2').dataset.age)));
      await sleep(150);
    }
    check(pulses.size >= 2, `the pulse tile updates (${[...pulses].join(', ')})`);
    check(ages.every((a) => a <= 30), `SpO2 readings stay current (ages ${ages.join(',')} s of daemon time)`);
    for (const tile of ['spo2', 'pulse', 'pi', 'bp']) {
      check(!(await page.locator(`#tile-${tile}`).evaluate((n) => n.classList.contains('stale'))), `the ${tile} tile is current`);
    }
    check(/^\d+\/\d+$/.test(await text(page, '#tile-bp .value')), 'the NIBP tile shows systolic/diastolic');
    check(/^\(\d+\)$/.test(await text(page, '#tile-bp .mean')), 'and the mean');
    check(/ago$/.test(await text(page, '#tile-bp .meta')), `the age of the cuff reading is shown (${await text(page, '#tile-bp .meta')})`);
    const next1 = await text(page, '#tile-bp .next');
    await sleep(1200);
    const next2 = await text(page, '#tile-bp .next');
    check(/^next in \d+:\d\d$/.test(next1) && next1 !== next2, `the countdown to the next cuff reading runs (${next1} → ${next2})`);
    check((await text(page, '#links [data-device="ox1"]')) === 'ox1 connected', 'ox1 link: connected');
    check(/KAP-PANEL-V/.test(await text(page, '#session-id')) && (await text(page, '#phase')) === 'baseline', 'session id and phase in the header');
    const trendPixels = await page.evaluate(() => {
      const c = document.querySelector('#tile-spo2 canvas');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let white = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i] > 230 && d[i + 1] > 230 && d[i + 2] > 230) white += 1;
      return white;
    });
    check(trendPixels > 20, `the SpO2 trend is drawn (${trendPixels} white pixels)`);

    // t = 100 s: the oximeter is connected but says nothing.
    await waitFor(page, () => document.querySelector('#tile-spo2').classList.contains('stale'), 12000, 'the SpO2 tile greys out when the oximeter goes quiet');
    const meta = await text(page, '#tile-spo2 .meta');
    check(/^NO DATA · \d+ s old$/.test(meta), `it says how old its value is (${meta})`);
    const grey = await style(page, '#tile-spo2 .value', ['color', 'textDecorationLine']);
    check(grey.color === GREY && grey.textDecorationLine === 'line-through', `the old value is grey and struck through (${JSON.stringify(grey)})`);
    for (const tile of ['pulse', 'pi']) {
      check(await page.locator(`#tile-${tile}`).evaluate((n) => n.classList.contains('stale')), `the ${tile} tile (same oximeter) greys out too`);
    }
    check(!(await page.locator('#tile-bp').evaluate((n) => n.classList.contains('stale'))), 'the NIBP tile (the cuff) stays current');
    check((await text(page, '#links [data-device="ox1"]')) === 'ox1 connected', 'the link itself is still up');
    // During a session the silence is a technical alarm, listed apart.
    await waitFor(page, () => [...document.querySelectorAll('#technical li.alarm.technical')].some((li) => /no data/.test(li.textContent)), 5000, 'a technical "no data" alarm is listed apart');
    check((await count(page, '#alarms li')) === 0, 'and not among the physiological alarms');
    check((await page.locator('#technical li.alarm').first().getAttribute('data-priority')) === 'medium', 'it is medium priority');

    // t = 200 s: data again.
    await waitFor(page, () => !document.querySelector('#tile-spo2').classList.contains('stale'), 12000, 'the SpO2 tile is current again when readings resume');
    check((await count(page, '#technical li')) === 0, 'the technical alarm ended');

    // t = 250 s: the link is lost.
    await waitFor(page, () => document.querySelector('#links [data-device="ox1"]').classList.contains('link-lost'), 12000, 'the header shows ox1 LINK LOST');
    await waitFor(page, () => document.querySelector('#tile-spo2').classList.contains('stale') && /LINK LOST/.test(document.querySelector('#tile-spo2 .meta').textContent), 1000, 'the SpO2 tile greys out at once with LINK LOST');
    await waitFor(page, () => [...document.querySelectorAll('#technical li.alarm')].some((li) => /disconnected/.test(li.textContent)), 5000, 'a technical "device disconnected" alarm is listed');
  } finally {
    await close();
  }
};

// A high-priority alarm: red flashing at 2 Hz, its tile red, the 10-pulse sound; medium
// yellow at 0.5 Hz and low cyan steady on the way; screenshots calm and in alarm.
cases.alarm = async () => {
  const { context, close } = await launch();
  try {
    check((await api('/api/v1/session', { method: 'POST', body: { id: 'KAP-0042' } })).status === 201, 'a session starts');
    const page = await openPanel(context, 'panel');
    check(await page.locator('#sound-warning').isVisible(), 'a standing warning says the sound is off until enabled');
    await page.click('#sound-warning');
    await waitFor(page, () => window.vitalwatchAudio.enabled, 5000, 'one tap enables the sound (Web Audio running)');
    await waitFor(page, () => document.querySelector('#sound-warning').hidden, 1000, 'and the warning goes');
    // A baseline blood pressure (the cuff measures every 4 minutes), then the infusion.
    await waitFor(page, () => {
      const s = window.vitalwatchPanel.session;
      const cuff = window.vitalwatchPanel.devices.get('cuff1');
      return s && cuff && cuff.readings.systolic && Date.parse(cuff.readings.systolic.time) > Date.parse(s.started);
    }, 10000, 'a cuff reading during the baseline phase');
    check((await api('/api/v1/session/phase', { method: 'POST', body: { phase: 'infusion' } })).status === 200, 'the infusion starts');
    await waitFor(page, () => document.querySelector('#phase').textContent === 'infusion', 3000, 'the header shows the infusion');
    // Calm until the cuff reading at t = 960 s (SBP 180: medium bp_high, and low bp_rise,
    // 30 % above the baseline); confirmed by the one at 1200 s (SBP 192: high). Stop about
    // 10 minutes into the session (it started at about 1 min).
    for (;;) {
      const status = (await api('/api/v1/status')).body;
      if ((Date.parse(status.time) - Date.parse(status.session.started)) / 1000 > 600) break;
      await sleep(200);
    }
    const calm = (await api('/api/v1/status')).body.alarms;
    check(calm.length === 0 && (await count(page, '#alarms li')) === 0 && (await count(page, '#technical li')) === 0, `no alarm yet: calm ${JSON.stringify(calm)}`);
    check(/^infusion \d+:\d\d$/.test(await text(page, '#session-time')), `the time since the infusion started is shown (${await text(page, '#session-time')})`);
    check(await page.evaluate(() => window.vitalwatchAudio.pattern === null), 'and silent');
    await screenshot(page, 'panel-calm.png');

    // t = 960 s: medium bp_high and low bp_rise.
    await waitFor(page, () => document.querySelector('#alarms li.prio-medium'), 15000, 'a medium alarm appears');
    checkFlash(await flashing(page, '#alarms li.prio-medium', 2100), { name: 'flash-medium', period: 2000, colours: [YELLOW, DARK_YELLOW] });
    check(await page.evaluate(() => window.vitalwatchAudio.pattern === 'medium' || window.vitalwatchAudio.pattern === 'high'), 'it sounds');
    const mediumBurst = await page.evaluate(() => window.vitalwatchAudio.scheduled.find((b) => b.pattern === 'medium'));
    check(mediumBurst && mediumBurst.pulses.length === 3, 'the medium pattern has 3 pulses');
    await waitFor(page, () => document.querySelector('#alarms li.prio-low'), 5000, 'the low BP-rise alarm appears');
    const low = await style(page, '#alarms li.prio-low', ['backgroundColor', 'animationName']);
    check(low.backgroundColor === CYAN && low.animationName === 'none', `low priority is cyan and steady (${JSON.stringify(low)})`);

    // t = 1200 s: the confirming reading: high.
    await waitFor(page, () => document.querySelector('#alarms li.prio-high'), 15000, 'a high-priority alarm appears');
    const first = await page.evaluate(() => [...document.querySelectorAll('#alarms li')].map((li) => li.dataset.priority));
    check(first[0] === 'high' && first[first.length - 1] === 'low', `alarms are ordered by priority (${first.join(', ')})`);
    checkFlash(await flashing(page, '#alarms li.prio-high', 1000), { name: 'flash-high', period: 500, colours: [RED, DARK_RED] });
    check(/BP high/.test(await text(page, '#alarms li.prio-high .msg')), 'it is the BP alarm');
    const tile = await flashing(page, '#tile-bp', 1000);
    check(tile.name === 'tile-high' && Math.abs(tile.period - 500) < 1, `the NIBP tile flashes red at 2 Hz (${tile.name}, ${tile.period} ms)`);
    const border = await style(page, '#tile-bp', ['borderTopColor']);
    check([RED, DARK_RED].includes(border.borderTopColor), `its border is red (${border.borderTopColor})`);
    check(!(await page.locator('#tile-spo2').evaluate((n) => /alarm-/.test(n.className))), 'the SpO2 tile is not in alarm');
    await waitFor(page, () => !document.querySelector('#advice').hidden && /Consider pausing the infusion/.test(document.querySelector('#advice').textContent), 2000, 'the infusion advice is shown prominently');

    // The sound: 10 pulses, 5 + 5, repeated at least every 10 s, with an IEC tone.
    await waitFor(page, () => window.vitalwatchAudio.pattern === 'high', 2000, 'the audio scheduler plays the high pattern');
    const audio = await page.evaluate(() => JSON.parse(JSON.stringify(window.vitalwatchAudio)));
    const burst = audio.scheduled.filter((b) => b.pattern === 'high').pop();
    check(burst && burst.sounded, 'a high burst was scheduled on the running audio context');
    const starts = burst.pulses.map((p) => p.start_s);
    check(starts.length === 10, `10 pulses (${starts.join(', ')})`);
    const gaps = starts.slice(1).map((s, i) => s - starts[i] - burst.pulses[i].duration_s);
    const longest = Math.max(...gaps);
    check(gaps.indexOf(longest) === 4 && longest >= 0.35 && longest <= 1.3, `in two groups of 5 (pause ${longest.toFixed(2)} s after the 5th)`);
    check(burst.pulses.every((p) => p.duration_s >= 0.075 && p.duration_s <= 0.2), 'pulses of 75 to 200 ms');
    const tone = audio.tone.high;
    check(tone.fundamental_hz >= 150 && tone.fundamental_hz <= 1000, `fundamental ${tone.fundamental_hz} Hz in 150–1000 Hz`);
    const inBand = tone.harmonics_hz.filter((f) => f >= 300 && f <= 4000);
    check(inBand.length >= 4, `at least 4 harmonics in 300–4000 Hz (${tone.harmonics_hz.join(', ')})`);
    // The picture in the flash's bright half.
    await waitFor(page, (red) => getComputedStyle(document.querySelector('#alarms li.prio-high')).backgroundColor === red, 1000, 'the flash is in its bright half', RED);
    await screenshot(page, 'panel-high-alarm.png');
    await waitFor(page, () => window.vitalwatchAudio.scheduled.filter((b) => b.pattern === 'high').length >= 2, 11000, 'the high burst repeats');
    const highs = await page.evaluate(() => window.vitalwatchAudio.scheduled.filter((b) => b.pattern === 'high').map((b) => b.at_ms));
    const every = (highs[highs.length - 1] - highs[highs.length - 2]) / 1000;
    check(every >= 2.5 && every <= 10, `every ${every.toFixed(1)} s (at most 10 s)`);
  } finally {
    await close();
  }
};

// Nurse actions with a token; refused, and their buttons absent, without one. Two screens.
cases.actions = async () => {
  const { context, close } = await launch();
  try {
    const nurse = await openPanel(context, 'nurse');
    const station = await openPanel(context, 'station'); // a second screen, never signed in
    for (const [name, page] of [['nurse', nurse], ['station', station]]) {
      check((await count(page, '#actions button')) === 0 && (await count(page, '#start-session')) === 0, `${name}: view only, no action buttons without a token`);
      check(await page.locator('#signin-open').isVisible(), `${name}: a nurse sign-in button`);
    }
    const refused = await nurse.evaluate(async () => (await fetch('/api/v1/session', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"id":"KAP-X"}' })).status);
    check(refused === 401, `the API refuses a session start without a token (${refused})`);

    await nurse.click('#signin-open');
    await nurse.fill('#token-input', 'not-the-token-at-all-0000');
    await nurse.click('#signin button[type=submit]');
    await waitFor(nurse, () => /Unknown token/.test(document.querySelector('#signin-msg').textContent), 3000, 'a wrong token is refused');
    check((await count(nurse, '#start-session')) === 0, 'and the panel stays view only');
    check(await nurse.evaluate(() => sessionStorage.getItem('vitalwatch.nurse-token') === null), 'nothing is kept');
    await nurse.fill('#token-input', TOKEN);
    await nurse.click('#signin button[type=submit]');
    await waitFor(nurse, () => /Nurse: nurse-station-a/.test(document.querySelector('#who').textContent), 3000, 'the right token signs the nurse in');
    check(await nurse.evaluate((t) => sessionStorage.getItem('vitalwatch.nurse-token') === t, TOKEN), 'the token is kept for the browser session');

    await nurse.fill('#session-input', 'Jane Doe');
    await nurse.click('#start-session');
    await waitFor(nurse, () => /never a name/.test((document.querySelector('#action-msg') || {}).textContent || ''), 2000, 'a name is refused as a session id');
    await nurse.fill('#session-input', 'KAP-PANEL-7');
    await nurse.click('#start-session');
    await waitFor(station, () => /KAP-PANEL-7/.test(document.querySelector('#session-id').textContent) && document.querySelector('#phase').textContent === 'baseline', 3000, 'the session starts (seen on the second screen)');
    await nurse.click('#start-infusion');
    await waitFor(station, () => document.querySelector('#phase').textContent === 'infusion', 3000, 'the infusion starts (seen on the second screen)');

    // SpO2 82 %: the high spo2_critical alarm.
    const high = '#alarms li.prio-high';
    await waitFor(nurse, (s) => document.querySelector(s), 15000, 'a high SpO2 alarm appears', high);
    await waitFor(station, (s) => document.querySelector(s), 3000, 'on both screens', high);
    check((await nurse.locator(`${high} button.ack`).count()) === 1 && (await nurse.locator(`${high} button.pause`).count()) === 1, 'the nurse has Acknowledge and Pause audio');
    check((await count(station, 'button.ack')) === 0 && (await count(station, 'button.pause')) === 0 && !(await station.locator('#pause-all').isVisible()), 'the second screen has none');
    const id = Number(await nurse.locator(high).getAttribute('data-alarm-id'));
    const spo2Tile = await nurse.locator('#tile-spo2').evaluate((n) => n.className);
    check(/alarm-high/.test(spo2Tile), `the SpO2 tile is in high alarm (${spo2Tile})`);
    const noToken = await station.evaluate(async (id) => (await fetch(`/api/v1/alarms/${id}/acknowledge`, { method: 'POST' })).status, id);
    check(noToken === 401, `acknowledging without a token is refused (${noToken})`);
    const pauseNoToken = await station.evaluate(async (id) => (await fetch(`/api/v1/alarms/${id}/audio-pause`, { method: 'POST' })).status, id);
    check(pauseNoToken === 401, `pausing its audio without a token is refused (${pauseNoToken})`);
    check((await api('/api/v1/status')).body.alarms.find((a) => a.id === id).audible === true, 'the alarm still sounds');
    await waitFor(nurse, () => window.vitalwatchAudio.pattern === 'high', 2000, 'the nurse screen plays the high pattern');

    // Audio pause: a countdown from 2:00, on both screens; the alarm stays shown.
    await nurse.click(`${high} button.pause`);
    await waitFor(nurse, (s) => /Audio paused \d:\d\d \(by nurse-station-a\)/.test(document.querySelector(`${s} .paused`).textContent), 3000, 'the audio-paused countdown is shown', high);
    await waitFor(station, (s) => /Audio paused \d:\d\d/.test(document.querySelector(`${s} .paused`).textContent), 3000, 'on the second screen too', high);
    const c1 = await text(nurse, `${high} .paused`);
    await sleep(1100);
    const c2 = await text(nurse, `${high} .paused`);
    check(c1 !== c2, `the countdown runs (${c1} → ${c2})`);
    const seconds = (t) => { const m = /(\d+):(\d\d)/.exec(t); return Number(m[1]) * 60 + Number(m[2]); };
    check(seconds(c1) <= 120 && seconds(c1) > 60, `it counts down from 120 s (${c1})`);
    check(await nurse.evaluate(() => window.vitalwatchAudio.pattern !== 'high'), 'the high pattern stops while paused');
    check((await nurse.locator(`${high} button.pause`).count()) === 0, 'its Pause button goes while paused');

    // Acknowledge: silent, still shown while SpO2 is low.
    await nurse.click(`${high} button.ack`);
    await waitFor(station, (s) => /acknowledged by nurse-station-a/.test(document.querySelector(s).textContent), 3000, 'acknowledged (seen on the second screen)', high);
    await waitFor(nurse, (s) => document.querySelector(s) && !document.querySelector(`${s} button.ack`) && /acknowledged by nurse-station-a/.test(document.querySelector(s).textContent), 2000, 'no Acknowledge button on an acknowledged alarm', high);
    const after = (await api('/api/v1/status')).body.alarms.find((a) => a.id === id);
    check(after && after.acknowledged_by === 'nurse-station-a' && after.audible === false && after.condition_present, 'the daemon has it acknowledged, silent and still present');

    // The medium spo2_low (15 s later): Pause all audio.
    await waitFor(nurse, () => document.querySelector('#alarms li.prio-medium[data-audible="true"]'), 10000, 'the medium SpO2-low alarm sounds');
    await nurse.click('#pause-all');
    await waitFor(nurse, () => document.querySelector('#alarms li.prio-medium[data-audible="false"]'), 3000, 'Pause all audio silences it');
    await waitFor(nurse, () => window.vitalwatchAudio.pattern === null, 2000, 'nothing sounds');

    // A note, published with the nurse's name.
    await nurse.fill('#note-input', 'Eyes closed, calm; O2 2 l/min started');
    await nurse.click('#add-note');
    await waitFor(station, () => /Note \(nurse-station-a\): Eyes closed, calm; O2 2 l\/min started/.test(document.querySelector('#log').textContent), 3000, 'the note appears with its author on the second screen');
    const long = await api('/api/v1/session/note', { method: 'POST', body: { text: 'x'.repeat(501) }, token: TOKEN });
    check(long.status === 400, `a note over 500 characters is refused (${long.status})`);
    const anonymous = await api('/api/v1/session/note', { method: 'POST', body: { text: 'hello' } });
    check(anonymous.status === 401, `a note without a token is refused (${anonymous.status})`);

    // Stop the infusion, end the session (two steps).
    await nurse.click('#stop-infusion');
    await waitFor(station, () => document.querySelector('#phase').textContent === 'recovery', 3000, 'the infusion stops: recovery');
    await nurse.click('#end-session');
    await sleep(600);
    check((await nurse.evaluate(() => document.querySelector('#phase').textContent)) === 'recovery', 'one click does not end the session');
    await nurse.click('#end-session');
    await waitFor(station, () => document.querySelector('#phase').textContent === 'ended', 3000, 'the second click ends it');

    await nurse.click('#signout');
    await waitFor(nurse, () => !document.querySelector('#start-session') && document.querySelector('#signin-open'), 2000, 'signing out makes the panel view only');
  } finally {
    await close();
  }
};

// A hung daemon (stopped), then a dead one (killed): MONITOR OFFLINE within 5 s, with the
// high-priority sound; back when the daemon is, with the state re-read. And a page whose
// script has stopped says so by itself.
cases.offline = async () => {
  const { context, close } = await launch();
  try {
    const page = await openPanel(context, 'panel');
    await page.click('#sound-warning');
    await waitFor(page, () => window.vitalwatchAudio.enabled, 5000, 'sound enabled');
    check(!(await page.locator('#offline').isVisible()), 'online: no offline screen');
    await waitFor(page, () => window.vitalwatchAudio.pattern === null, 2000, 'silent');

    // Stopped: the connection stays open but the heartbeats stop.
    let t0 = Date.now();
    await control('stop');
    await waitFor(page, () => !document.querySelector('#offline').hidden && document.querySelector('#offline-title').textContent === 'MONITOR OFFLINE', 5000 - (Date.now() - t0), 'a stopped daemon: MONITOR OFFLINE within 5 s');
    const hungAfter = (Date.now() - t0) / 1000;
    check(hungAfter >= 2, `found by the missing heartbeats (after ${hungAfter.toFixed(1)} s)`);
    checkFlash(await flashing(page, '#offline', 1000), { name: 'flash-high', period: 500, colours: [RED, DARK_RED] });
    const cover = await page.evaluate(() => { const r = document.querySelector('#offline').getBoundingClientRect(); return [r.width, r.height]; });
    check(cover[0] === 1280 && cover[1] === 800, `it covers the whole screen (${cover})`);
    await waitFor(page, () => window.vitalwatchAudio.pattern === 'high' && window.vitalwatchAudio.cause === 'offline', 1000, 'with the high-priority sound');
    await screenshot(page, 'panel-offline.png');

    let since = Date.now();
    await control('resume');
    await waitFor(page, () => document.querySelector('#offline').hidden, 15000, 'resumed: the panel comes back');
    check(page.requests.some((r) => r.at >= since && r.url.endsWith('/api/v1/status')), 'after re-reading /api/v1/status');
    await waitFor(page, () => window.vitalwatchAudio.pattern === null, 2000, 'and the offline sound stops');

    // Killed: the stream closes.
    t0 = Date.now();
    await control('kill');
    await waitFor(page, () => !document.querySelector('#offline').hidden && document.querySelector('#offline-title').textContent === 'MONITOR OFFLINE', 5000 - (Date.now() - t0), 'a killed daemon: MONITOR OFFLINE within 5 s');
    log(`  (after ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    await sleep(1500);
    check(await page.locator('#offline').isVisible(), 'it stays offline while the daemon is down');
    since = Date.now();
    await control('restart');
    await waitFor(page, () => document.querySelector('#offline').hidden, 15000, 'restarted on the same port: the panel comes back');
    check(page.requests.some((r) => r.at >= since && r.url.endsWith('/api/v1/status')), 'after re-reading /api/v1/status');
    await waitFor(page, () => /^\d+$/.test(document.querySelector('#tile-spo2 .value').textContent) && !document.querySelector('#tile-spo2').classList.contains('stale'), 5000, 'with current vitals');

    // A page whose script has died: every timer cleared, nothing re-renders.
    await page.evaluate(() => { const last = setInterval(() => {}, 1e6); for (let i = 0; i <= last; i += 1) clearInterval(i); });
    t0 = Date.now();
    await waitFor(page, () => getComputedStyle(document.querySelector('#stalled')).visibility === 'visible', 9000, 'a dead script: PANEL NOT UPDATING by CSS alone');
    check((Date.now() - t0) / 1000 >= 4, 'after about 6 s');
  } finally {
    await close();
  }
};

// ---------------------------------------------------------------------- run
const run = cases[CASE];
if (!run) fail(`unknown case ${CASE}; cases: ${Object.keys(cases).join(', ')}`);
const timer = setTimeout(() => fail('the case took longer than 150 s'), 150000);
try {
  log(`case ${CASE} against ${BASE}`);
  await run();
  clearTimeout(timer);
  log(`PASS ${CASE}`);
  process.exit(0);
} catch (e) {
  fail(e.stack || e.message || String(e));
}
