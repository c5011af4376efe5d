// vitalwatch bedside panel: one page, no dependencies, nothing loaded from elsewhere.
//
// It reads the daemon's state (/api/v1/status, /rules, /trends), follows the event stream
// (/api/v1/events), draws the vitals and their trends, lists the alarms by priority then
// time, and sounds them through Web Audio with the IEC 60601-1-8 pulse patterns. It fails
// loud: without a heartbeat for 4 s, or when the stream closes, the whole screen becomes a
// flashing MONITOR OFFLINE with the high-priority sound until the stream is back and the
// state re-read. Nurse actions need a nurse token when the daemon has tokens; the token is
// kept for the browser session (sessionStorage) and without one the panel only shows.
'use strict';

(() => {
  // ---------------------------------------------------------------- constants
  const HEARTBEAT_TIMEOUT_MS = 4000; // 4 missed heartbeats: MONITOR OFFLINE within 5 s
  const CONNECT_TIMEOUT_MS = 5000; // a connection that says nothing is a failed one
  const RETRY_MS = 1000;
  const JITTER_REAL_S = 1.5; // delivery jitter allowed before a reading counts as stale
  const TREND_MS = 30 * 60 * 1000;
  const TOKEN_KEY = 'vitalwatch.nurse-token';
  const PRIORITY_RANK = { high: 3, medium: 2, low: 1 };
  const FLASH_PERIOD_MS = { high: 500, medium: 2000 };

  // Audio: IEC 60601-1-8 pulse patterns. Times in seconds from the burst's start.
  // High: 10 pulses, 3 + 2 then again 3 + 2 (5 + 5), pulse 150 ms, repeated every 8 s.
  // Medium: 3 pulses of 200 ms, every 22 s. Low: 1 pulse of 250 ms, every 30 s.
  const PATTERNS = {
    high: { pulses: [0, 0.25, 0.5, 0.9, 1.15, 2.0, 2.25, 2.5, 2.9, 3.15], duration_s: 0.15, repeat_s: 8, fundamental_hz: 660 },
    medium: { pulses: [0, 0.35, 0.7], duration_s: 0.2, repeat_s: 22, fundamental_hz: 523 },
    low: { pulses: [0], duration_s: 0.25, repeat_s: 30, fundamental_hz: 440 },
  };
  // Harmonic amplitudes (fundamental first): four harmonics within 12 dB of it, all of them
  // between 300 and 4000 Hz for every fundamental above.
  const HARMONICS = [1, 0.6, 0.45, 0.35, 0.25];

  // -------------------------------------------------------------------- state
  const S = {
    tokensRequired: null,
    nurse: null, // the token's name (or `local`) when this screen may act
    token: sessionStorage.getItem(TOKEN_KEY),
    rules: null,
    session: null,
    devices: new Map(), // id -> device view; readings: { vital: reading }
    alarms: new Map(), // id -> alarm view
    trends: new Map(), // "device/vital" -> [[ms, value], ...]
    log: [],
    sync: null, // { daemonMs, perfMs, speed }: the daemon clock, from status and heartbeats
    online: false,
    everOnline: false,
    offlineSince: performance.now(),
    offlineWhy: 'Waiting for vitalwatch.',
    lastBeat: 0,
    attempt: 0,
    endArmedUntil: 0,
    actionMsg: '',
  };

  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };

  // --------------------------------------------------------------- time base
  function daemonNow() {
    if (!S.sync) return Date.now();
    return S.sync.daemonMs + (performance.now() - S.sync.perfMs) * S.sync.speed;
  }
  function syncClock(timeIso, speed) {
    const ms = Date.parse(timeIso);
    if (Number.isFinite(ms)) S.sync = { daemonMs: ms, perfMs: performance.now(), speed: speed > 0 ? speed : 1 };
  }
  const speed = () => (S.sync ? S.sync.speed : 1);
  function fmtDuration(s) {
    s = Math.max(0, Math.floor(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const two = (n) => String(n).padStart(2, '0');
    return h > 0 ? `${h}:${two(m)}:${two(sec)}` : `${m}:${two(sec)}`;
  }
  function fmtAge(s) {
    if (s < 90) return `${Math.max(0, Math.round(s))} s`;
    if (s < 5400) return `${Math.round(s / 60)} min`;
    return `${(s / 3600).toFixed(1)} h`;
  }
  const fmtClock = (ms) => new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  const ageOf = (iso) => (daemonNow() - Date.parse(iso)) / 1000;

  // ------------------------------------------------------------------ network
  async function api(path, options = {}) {
    const headers = { ...(options.headers || {}) };
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    const response = await fetch(path, {
      method: options.method || 'GET',
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      cache: 'no-store',
    });
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    return { status: response.status, ok: response.ok, body };
  }

  function connect() {
    S.attempt += 1;
    const attempt = S.attempt;
    const es = new EventSource('/api/v1/events');
    let restored = false;
    // A connection that never delivers its state (a hung daemon accepts and says nothing)
    // counts as failed.
    const giveUp = setTimeout(() => { if (!restored) fail('no answer from vitalwatch'); }, CONNECT_TIMEOUT_MS);
    const current = () => attempt === S.attempt;
    function fail(why) {
      if (!current()) return;
      clearTimeout(giveUp);
      es.close();
      goOffline(why);
      S.attempt += 1; // ignore anything still arriving on this connection
      setTimeout(connect, RETRY_MS);
    }
    // While the state is re-read, events wait, then apply on top of it in order (each
    // carries its whole alarm, session or reading, so replaying one already counted in the
    // state changes nothing).
    let buffer = null;
    let rereads = 0;
    const on = (name, handler, direct) => es.addEventListener(name, (e) => {
      if (!current()) return;
      let data;
      try { data = JSON.parse(e.data); } catch (_) { return; }
      if (buffer && !direct) buffer.push(() => handler(data));
      else handler(data);
    });
    const rereadNow = async () => {
      buffer = buffer || [];
      rereads += 1;
      try {
        await reread();
      } finally {
        rereads -= 1;
        if (rereads === 0) {
          const pending = buffer || [];
          buffer = null;
          if (current()) for (const apply of pending) apply();
        }
      }
    };
    on('status', async (snapshot) => {
      applyStatus(snapshot);
      // Back from a break: re-read the whole state before showing anything as current.
      try {
        await rereadNow();
      } catch (err) {
        fail(`cannot read the state: ${err.message || err}`);
        return;
      }
      if (!current()) return;
      restored = true;
      clearTimeout(giveUp);
      S.lastBeat = performance.now();
      goOnline();
    });
    on('heartbeat', (beat) => {
      syncClock(beat.time, beat.clock_speed);
      S.lastBeat = performance.now();
    }, true);
    on('reading', onReading);
    on('alarm', onAlarm);
    on('link', onLink);
    on('session', onSession);
    on('lagged', () => { rereadNow().catch(() => fail('cannot re-read the state')); }, true);
    es.onerror = () => fail('the event stream closed');
    S.failConnection = fail;
  }

  async function reread() {
    const [status, rules, trends] = await Promise.all([api('/api/v1/status'), api('/api/v1/rules'), api('/api/v1/trends')]);
    if (!status.ok || !rules.ok || !trends.ok) throw new Error('HTTP ' + [status.status, rules.status, trends.status].join('/'));
    S.rules = rules.body;
    applyStatus(status.body);
    S.trends.clear();
    for (const series of trends.body.series || []) S.trends.set(`${series.device}/${series.vital}`, series.points.slice());
    // The daemon may have restarted with other tokens: check the kept one again.
    if (S.tokensRequired && S.token) await checkToken(S.token, false);
    else if (!S.token) S.nurse = null;
  }

  function applyStatus(status) {
    syncClock(status.time, status.clock_speed);
    S.tokensRequired = !!status.tokens_required;
    S.session = status.session;
    S.devices = new Map(status.devices.map((d) => [d.id, d]));
    S.alarms = new Map(status.alarms.map((a) => [a.id, a]));
  }

  function goOffline(why) {
    if (S.online) {
      S.offlineSince = performance.now();
      S.offlineAt = Date.now();
      S.retries = 0;
    }
    S.online = false;
    S.offlineWhy = why;
    S.retries = (S.retries || 0) + 1;
    scheduleAudio();
  }
  function goOnline() {
    S.online = true;
    S.everOnline = true;
    S.offlineWhy = '';
  }

  // The watchdog: heartbeats every second; four missed and the monitor is offline.
  function watchdog() {
    if (S.online && performance.now() - S.lastBeat > HEARTBEAT_TIMEOUT_MS) {
      const fail = S.failConnection;
      if (fail) fail(`no heartbeat from vitalwatch for ${Math.round((performance.now() - S.lastBeat) / 1000)} s`);
    }
  }

  // ------------------------------------------------------------------- events
  function onReading(r) {
    const device = S.devices.get(r.device);
    if (device) device.readings[r.vital] = r;
    const key = `${r.device}/${r.vital}`;
    let series = S.trends.get(key);
    if (!series) S.trends.set(key, (series = []));
    const ms = Date.parse(r.time);
    const last = series[series.length - 1];
    if (!last || ms - last[0] >= 500) {
      const clinical = r.quality.length === 0 ? r.value : null;
      series.push([ms, clinical]);
      const from = ms - TREND_MS;
      let drop = 0;
      while (drop < series.length && series[drop][0] < from) drop += 1;
      if (drop) series.splice(0, drop);
    }
  }

  const CHANGE_TEXT = {
    raised: 'raised', escalated: 'escalated', condition_ended: 'condition ended (latched)',
    condition_returned: 'condition returned', acknowledged: 'acknowledged', audio_paused: 'audio paused',
    audio_resumed: 'audio resumed', advice_changed: 'advice changed', ended: 'ended',
  };
  function onAlarm(e) {
    if (e.change === 'ended') S.alarms.delete(e.alarm.id);
    else S.alarms.set(e.alarm.id, e.alarm);
    // At once, not at the next frame: a hidden tab's timers may run rarely.
    scheduleAudio();
    if (e.change !== 'audio_resumed' && e.change !== 'advice_changed') {
      const by = e.by ? ` by ${e.by}` : '';
      addLog(e.time, `${e.alarm.priority.toUpperCase()} ${e.alarm.message}: ${CHANGE_TEXT[e.change] || e.change}${by}`);
    }
  }
  function onLink(e) {
    const device = S.devices.get(e.device);
    if (device) {
      device.link = e.state;
      device.link_detail = e.detail;
    }
    addLog(e.time, `${e.device}: link ${e.state}`);
  }
  function onSession(e) {
    const { by, change, note, time, ...session } = e;
    S.session = session;
    if (change === 'note') addLog(time, `Note (${by}): ${note}`, 'note');
    else if (change === 'started') addLog(time, `Session ${session.id} started by ${by}`);
    else addLog(time, `Phase ${session.phase} (${by})`);
  }
  function addLog(time, text, cls) {
    S.log.unshift({ ms: Date.parse(time) || daemonNow(), text, cls });
    S.log.length = Math.min(S.log.length, 30);
    S.logDirty = true;
  }

  // ------------------------------------------------------------------- tokens
  async function checkToken(token, interactive) {
    const answer = await api('/api/v1/whoami', { token });
    if (answer.ok) {
      S.token = token;
      S.nurse = answer.body.name;
      sessionStorage.setItem(TOKEN_KEY, token);
      return true;
    }
    if (answer.status === 401 || answer.status === 403) {
      forgetToken();
      if (interactive) $('signin-msg').textContent = answer.status === 403 ? 'Unknown token.' : 'A token is needed.';
    } else if (interactive) {
      $('signin-msg').textContent = `Cannot check the token (HTTP ${answer.status}).`;
    }
    return false;
  }
  function forgetToken() {
    S.token = null;
    S.nurse = null;
    sessionStorage.removeItem(TOKEN_KEY);
  }
  // Without tokens (a loopback-only daemon) anyone here may act; with them, a signed-in nurse.
  const canAct = () => S.tokensRequired === false || (S.tokensRequired === true && !!S.nurse);

  async function act(path, body, what) {
    S.actionMsg = '';
    try {
      const answer = await api(path, { method: 'POST', body: body || {}, token: S.token });
      if (answer.status === 401 || answer.status === 403) {
        forgetToken();
        S.actionMsg = `${what}: refused, the nurse token is not valid (signed out).`;
      } else if (!answer.ok) {
        S.actionMsg = `${what}: ${(answer.body && answer.body.error) || 'HTTP ' + answer.status}`;
      }
      S.actionsKey = null;
      return answer;
    } catch (err) {
      S.actionMsg = `${what}: ${err.message || err}`;
      S.actionsKey = null;
      return { ok: false };
    }
  }

  // -------------------------------------------------------------------- audio
  const audio = {
    ctx: null,
    waveform: null,
    pattern: null,
    lastBurst: 0, // performance.now() of the current pattern's latest burst
    nodes: [],
  };
  // What tests (and curious people) can read with no sound device.
  const audioState = {
    enabled: false,
    contextState: 'none',
    pattern: null,
    cause: null,
    patterns: PATTERNS,
    tone: Object.fromEntries(Object.entries(PATTERNS).map(([name, p]) => [name, {
      fundamental_hz: p.fundamental_hz,
      harmonics_hz: HARMONICS.slice(1).map((_, i) => p.fundamental_hz * (i + 2)),
      amplitudes: HARMONICS,
    }])),
    scheduled: [],
  };
  window.vitalwatchAudio = audioState;

  function enableSound() {
    try {
      if (!audio.ctx) {
        const Ctx = window.AudioContext || window.webkitAudioContext;
        audio.ctx = new Ctx();
        const real = new Float32Array(HARMONICS.length + 1);
        const imag = new Float32Array(HARMONICS.length + 1);
        HARMONICS.forEach((a, i) => { imag[i + 1] = a; });
        audio.waveform = audio.ctx.createPeriodicWave(real, imag);
        audio.ctx.onstatechange = () => { audioState.contextState = audio.ctx.state; };
      }
      audio.ctx.resume().then(() => {
        audioState.contextState = audio.ctx.state;
        audioState.enabled = audio.ctx.state === 'running';
        if (audioState.enabled) {
          // One short pulse: the nurse hears that sound works.
          playPulses([0], 0.12, 440, audio.ctx.currentTime + 0.05);
          if (audio.pattern) audio.lastBurst = 0; // sound the current pattern at once
        }
      }).catch((err) => { audioState.contextState = `cannot start: ${err.message || err}`; });
      if (navigator.wakeLock) navigator.wakeLock.request('screen').catch(() => {});
    } catch (err) {
      audioState.contextState = `unavailable: ${err.message || err}`;
    }
  }

  function playPulses(starts, duration, fundamental, at) {
    const ctx = audio.ctx;
    for (const start of starts) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.setPeriodicWave(audio.waveform);
      osc.frequency.value = fundamental;
      const t0 = at + start;
      const rise = duration * 0.15;
      gain.gain.setValueAtTime(0, t0);
      gain.gain.linearRampToValueAtTime(0.25, t0 + rise);
      gain.gain.setValueAtTime(0.25, t0 + duration - rise);
      gain.gain.linearRampToValueAtTime(0, t0 + duration);
      osc.connect(gain).connect(ctx.destination);
      osc.start(t0);
      osc.stop(t0 + duration + 0.01);
      audio.nodes.push(osc);
      osc.onended = () => { audio.nodes = audio.nodes.filter((n) => n !== osc); };
    }
  }

  function stopSound() {
    for (const node of audio.nodes) { try { node.stop(); } catch (_) { /* already stopped */ } }
    audio.nodes = [];
  }

  // Which pattern should sound now: the highest priority among audible alarms, or high
  // while the monitor is offline.
  function wantedPattern() {
    if (!S.online && S.everOnline) return { pattern: 'high', cause: 'offline' };
    if (!S.online && performance.now() - S.offlineSince > HEARTBEAT_TIMEOUT_MS) return { pattern: 'high', cause: 'offline' };
    if (!S.online) return { pattern: null, cause: null };
    let best = null;
    for (const a of S.alarms.values()) {
      if (a.audible && (!best || PRIORITY_RANK[a.priority] > PRIORITY_RANK[best])) best = a.priority;
    }
    return { pattern: best, cause: best ? 'alarm' : null };
  }

  function scheduleAudio() {
    const { pattern, cause } = wantedPattern();
    const now = performance.now();
    if (pattern !== audio.pattern) {
      stopSound();
      audio.pattern = pattern;
      audio.lastBurst = 0;
    }
    audioState.pattern = pattern;
    audioState.cause = cause;
    if (audio.ctx) audioState.contextState = audio.ctx.state;
    audioState.enabled = !!audio.ctx && audio.ctx.state === 'running';
    if (!pattern) return;
    const p = PATTERNS[pattern];
    if (audio.lastBurst && now - audio.lastBurst < p.repeat_s * 1000) return;
    audio.lastBurst = now;
    const sounded = audioState.enabled;
    if (sounded) playPulses(p.pulses, p.duration_s, p.fundamental_hz, audio.ctx.currentTime + 0.02);
    audioState.scheduled.push({
      pattern,
      cause,
      at_ms: now,
      sounded,
      pulses: p.pulses.map((start) => ({ start_s: start, duration_s: p.duration_s, fundamental_hz: p.fundamental_hz })),
    });
    if (audioState.scheduled.length > 20) audioState.scheduled.shift();
  }

  // ---------------------------------------------------------------- rendering
  // Every flashing element flashes in phase: its animation starts at a multiple of the period.
  function alignFlash(node, priority) {
    const period = FLASH_PERIOD_MS[priority];
    const now = document.timeline.currentTime;
    if (!period || now === null) return;
    for (const anim of node.getAnimations()) anim.startTime = Math.floor(now / period) * period;
  }
  function setClass(node, name, on) {
    if (node.classList.contains(name) !== on) node.classList.toggle(name, on);
  }
  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  const PHASE_TEXT = { baseline: 'baseline', infusion: 'infusion', recovery: 'recovery', ended: 'ended' };

  function renderHeader() {
    const s = S.session;
    const active = s && s.phase !== 'ended';
    setText($('session-id'), s ? `Session ${s.id}` : 'No session');
    const phase = $('phase');
    setText(phase, s ? PHASE_TEXT[s.phase] : 'no session');
    phase.className = `phase phase-${s ? s.phase : 'none'}`;
    let time = '';
    if (s && s.infusion_started) {
      const start = Date.parse(s.infusion_started);
      if (s.infusion_stopped) {
        const stop = Date.parse(s.infusion_stopped);
        time = `infusion ran ${fmtDuration((stop - start) / 1000)}, stopped ${fmtDuration((daemonNow() - stop) / 1000)} ago`;
      } else {
        time = `infusion ${fmtDuration((daemonNow() - start) / 1000)}`;
      }
    } else if (active) {
      time = `${fmtDuration((daemonNow() - Date.parse(s.phase_since)) / 1000)}`;
    }
    setText($('session-time'), time);

    const links = $('links');
    const linkKey = [...S.devices.values()].map((d) => `${d.id}:${d.link}`).join(' ');
    if (links.dataset.key !== linkKey) {
      links.dataset.key = linkKey;
      links.replaceChildren(...[...S.devices.values()].map((d) => {
        const span = el('span', `link link-${d.link}`, `${d.id} ${d.link === 'connected' ? 'connected' : d.link === 'lost' ? 'LINK LOST' : d.link === 'idle' ? 'idle between measurements' : 'connecting'}`);
        span.dataset.device = d.id;
        span.title = d.link_detail || d.profile;
        return span;
      }));
    }
    setText($('clock'), S.sync ? fmtClock(daemonNow()) + (speed() !== 1 ? ` (×${speed()})` : '') : '');

    const who = $('who');
    const whoKey = `${S.tokensRequired}|${S.nurse}`;
    if (who.dataset.key !== whoKey) {
      who.dataset.key = whoKey;
      if (S.tokensRequired === null) who.replaceChildren();
      else if (!S.tokensRequired) who.replaceChildren(el('span', '', 'no tokens: open'));
      else if (S.nurse) {
        const out = el('button', 'act', 'Sign out');
        out.id = 'signout';
        out.type = 'button';
        out.onclick = () => { forgetToken(); S.actionsKey = null; };
        who.replaceChildren(el('span', 'nurse', `Nurse: ${S.nurse}`), out);
      } else {
        const signIn = el('button', 'act', 'Nurse sign-in');
        signIn.id = 'signin-open';
        signIn.type = 'button';
        signIn.onclick = () => { $('signin').hidden = false; $('signin-msg').textContent = ''; $('token-input').focus(); };
        who.replaceChildren(el('span', '', 'View only'), signIn);
      }
    }
    $('sound-warning').hidden = audioState.enabled;
  }

  function alarmInfo(a) {
    const parts = [];
    parts.push(a.device);
    parts.push(`since ${fmtClock(Date.parse(a.raised))} (${fmtAge(ageOf(a.raised))})`);
    if (!a.condition_present) parts.push('condition ended: acknowledge to reset');
    if (a.acknowledged_by) parts.push(`acknowledged by ${a.acknowledged_by}: silent`);
    return parts.join(' · ');
  }

  function pauseRemaining(a) {
    if (!a.audio_paused_until) return null;
    const left = (Date.parse(a.audio_paused_until) - daemonNow()) / 1000;
    return left > 0 ? left : null;
  }

  function sortAlarms(list) {
    return list.sort((x, y) => (PRIORITY_RANK[y.priority] - PRIORITY_RANK[x.priority]) || (Date.parse(x.raised) - Date.parse(y.raised)) || (x.id - y.id));
  }

  function renderAlarmList(ul, alarms) {
    const existing = new Map([...ul.children].map((li) => [Number(li.dataset.alarmId), li]));
    const wanted = sortAlarms(alarms);
    wanted.forEach((a, index) => {
      let li = existing.get(a.id);
      if (!li) {
        li = el('li');
        li.dataset.alarmId = a.id;
        li.append(el('span', 'prio'), el('span', 'msg'), el('span', 'buttons'), el('span', 'info'), el('span', 'paused'));
      }
      existing.delete(a.id);
      const cls = `alarm prio-${a.priority} ${a.kind}${a.condition_present ? '' : ' latched'}${a.acknowledged_by ? ' acknowledged' : ''}`;
      if (li.className !== cls) {
        li.className = cls;
        alignFlash(li, a.priority);
      }
      li.dataset.priority = a.priority;
      li.dataset.audible = a.audible;
      const [prio, msg, buttons, info, paused] = li.children;
      setText(prio, { high: '!!! HIGH', medium: '!! MED', low: '! LOW' }[a.priority]);
      setText(msg, a.message);
      setText(info, alarmInfo(a));
      const left = pauseRemaining(a);
      setText(paused, left !== null && !a.acknowledged_by ? `Audio paused ${fmtDuration(left)} (by ${a.audio_paused_by})` : '');
      const key = `${canAct()}|${!!a.acknowledged_by}|${a.audible}`;
      if (buttons.dataset.key !== key) {
        buttons.dataset.key = key;
        const list = [];
        if (canAct() && !a.acknowledged_by) {
          const ack = el('button', 'act ack', 'Acknowledge');
          ack.type = 'button';
          ack.onclick = () => act(`/api/v1/alarms/${a.id}/acknowledge`, {}, 'Acknowledge');
          list.push(ack);
        }
        if (canAct() && a.audible) {
          const pause = el('button', 'act pause', 'Pause audio');
          pause.type = 'button';
          pause.onclick = () => act(`/api/v1/alarms/${a.id}/audio-pause`, {}, 'Audio pause');
          list.push(pause);
        }
        buttons.replaceChildren(...list);
      }
      if (ul.children[index] !== li) ul.insertBefore(li, ul.children[index] || null);
    });
    for (const li of existing.values()) li.remove();
  }

  function renderAlarms() {
    const all = [...S.alarms.values()];
    const physio = all.filter((a) => a.kind !== 'technical');
    const tech = all.filter((a) => a.kind === 'technical');
    renderAlarmList($('alarms'), physio);
    renderAlarmList($('technical'), tech);
    $('no-alarms').hidden = physio.length > 0;
    $('no-technical').hidden = tech.length > 0;
    $('pause-all').hidden = !(canAct() && all.some((a) => a.audible));

    // Advice (for example "consider pausing the infusion") while the infusion runs.
    const advice = $('advice');
    const advising = sortAlarms(all.filter((a) => a.advice));
    const infusion = S.session && S.session.phase === 'infusion';
    if (infusion && advising.length) {
      const text = [...new Set(advising.map((a) => a.advice))].join('  ·  ');
      setText(advice, `ADVICE: ${text}`);
      advice.className = `banner advice-${advising[0].priority}`;
      advice.hidden = false;
    } else {
      advice.hidden = true;
    }
  }

  // Tiles. Each shows a vital from the fastest device that reports it.
  const TILES = [
    { id: 'tile-spo2', vitals: ['spo2'] },
    { id: 'tile-pulse', vitals: ['pulse_rate'] },
    { id: 'tile-bp', vitals: ['systolic', 'diastolic', 'mean_arterial'] },
    { id: 'tile-pi', vitals: ['perfusion_index'] },
  ];
  const FLAG_TEXT = { sensor_off: 'SENSOR OFF', searching: 'SEARCHING', artefact: 'ARTEFACT', low_perfusion: 'LOW PERFUSION' };

  function sourceOf(vital) {
    let best = null;
    for (const d of S.devices.values()) {
      if ((d.vitals || []).includes(vital) && (!best || d.interval_s < best.interval_s)) best = d;
    }
    return best;
  }
  // A reading is current only from a connected device and within its expected interval.
  function staleness(device, reading) {
    if (!device) return { stale: true, why: 'no device' };
    if (!reading) return { stale: true, why: device.link === 'lost' ? 'link lost' : 'no reading yet' };
    const age = ageOf(reading.time);
    const limit = Math.max(device.stale_after_s, JITTER_REAL_S * speed());
    if (device.link === 'lost') return { stale: true, age, why: `LINK LOST · ${fmtAge(age)} old` };
    if (age > limit) return { stale: true, age, why: `NO DATA · ${fmtAge(age)} old` };
    return { stale: false, age };
  }
  function tileAlarm(vitals) {
    let best = null;
    for (const a of S.alarms.values()) {
      if (a.kind === 'physiological' && vitals.includes(a.vital) && (!best || PRIORITY_RANK[a.priority] > PRIORITY_RANK[best])) best = a.priority;
    }
    return best;
  }
  function fmtValue(vital, value) {
    if (value === null || value === undefined) return '--';
    return vital === 'perfusion_index' ? value.toFixed(1) : String(Math.round(value));
  }

  function renderTiles() {
    for (const tile of TILES) {
      const node = $(tile.id);
      const main = tile.vitals[0];
      const device = sourceOf(main);
      const reading = device ? device.readings[main] : null;
      const { stale, why, age } = staleness(device, reading);
      const flags = reading ? reading.quality.map((f) => FLAG_TEXT[f] || f) : [];
      setText(node.querySelector('.src'), device ? device.id : '');
      const base = (S.session && S.session.phase !== 'ended' && S.session.baseline) || {};
      const baseText = tile.id === 'tile-bp'
        ? (base.systolic !== undefined ? `baseline ${Math.round(base.systolic)}/${base.diastolic !== undefined ? Math.round(base.diastolic) : '--'}` : '')
        : (base[main] !== undefined ? `baseline ${fmtValue(main, base[main])}` : '');
      setText(node.querySelector('.base'), baseText);
      const value = node.querySelector('.value');
      const meta = node.querySelector('.meta');
      if (tile.id === 'tile-bp') {
        const sys = reading, dia = device && device.readings.diastolic, map = device && device.readings.mean_arterial;
        const ok = sys && !flags.length;
        setText(value, ok ? `${fmtValue('systolic', sys.value)}/${dia ? fmtValue('diastolic', dia.value) : '--'}` : '--/--');
        setText(node.querySelector('.mean'), ok && map ? `(${fmtValue('mean_arterial', map.value)})` : '');
        let metaText = sys ? `${fmtAge(age)} ago` : 'no measurement yet';
        if (stale && sys) metaText = why;
        setText(meta, flags.length ? flags.join(' ') : metaText);
        let next = '';
        if (sys && device) {
          const due = (Date.parse(sys.time) - daemonNow()) / 1000 + device.interval_s;
          next = due >= 0 ? `next in ${fmtDuration(due)}` : `overdue ${fmtDuration(-due)}`;
        }
        setText(node.querySelector('.next'), next);
      } else {
        setText(value, reading && !flags.length ? fmtValue(main, reading.value) : '--');
        setText(meta, flags.length ? flags.join(' ') : stale ? why : '');
      }
      setClass(node, 'stale', stale);
      node.dataset.age = age === undefined ? '' : String(Math.round(age));
      const prio = tileAlarm(tile.vitals);
      for (const p of ['high', 'medium', 'low']) setClass(node, `alarm-${p}`, prio === p);
      if (node.dataset.prio !== String(prio)) {
        node.dataset.prio = String(prio);
        alignFlash(node, prio);
      }
    }
  }

  // Trend charts: 30 minutes, alarm limits, the infusion shaded.
  const RANGES = { spo2: [80, 100], pulse_rate: [40, 140], systolic: [50, 200], perfusion_index: [0, 8] };
  const PRIORITY_COLOUR = { high: '#ff2020', medium: '#ffd400', low: '#00d8ff' };
  function limitsFor(vitals) {
    const out = [];
    if (!S.rules) return out;
    const phase = S.session && S.session.phase !== 'ended' ? S.session.phase : null;
    for (const rule of S.rules.rules) {
      for (const clause of rule.when) {
        if (clause.measure !== 'value' || !vitals.includes(clause.vital)) continue;
        let limit = clause.limit;
        if (limit === undefined && clause.baseline_percent !== undefined) {
          const base = S.session && S.session.baseline && S.session.baseline[clause.vital];
          if (base === undefined) continue;
          limit = base * (1 + clause.baseline_percent / 100);
        }
        out.push({ limit, priority: rule.priority, armed: !phase || rule.armed.includes(phase) });
      }
    }
    return out;
  }

  function drawTrend(tile) {
    const canvas = $(tile.id).querySelector('canvas');
    const ratio = window.devicePixelRatio || 1;
    const w = Math.max(10, Math.round(canvas.clientWidth * ratio));
    const h = Math.max(10, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    const g = canvas.getContext('2d');
    g.clearRect(0, 0, w, h);
    const now = daemonNow();
    const from = now - TREND_MS;
    const device = sourceOf(tile.vitals[0]);
    const series = tile.vitals.map((v) => (device && S.trends.get(`${device.id}/${v}`)) || []);
    const limits = limitsFor(tile.vitals);
    let [lo, hi] = RANGES[tile.vitals[0]];
    for (const s of series) for (const [t, v] of s) if (v !== null && t >= from) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    for (const l of limits) if (l.armed && l.limit >= lo - (hi - lo) * 0.3 && l.limit <= hi + (hi - lo) * 0.3) { lo = Math.min(lo, l.limit); hi = Math.max(hi, l.limit); }
    const pad = (hi - lo) * 0.06 || 1;
    lo -= pad; hi += pad;
    const font = Math.round(11 * ratio);
    const left = font * 3;
    const x = (t) => left + ((t - from) / TREND_MS) * (w - left - 2);
    const y = (v) => h - font * 1.4 - ((v - lo) / (hi - lo)) * (h - font * 2);

    // Infusion window.
    const s = S.session;
    if (s && s.infusion_started) {
      const a = Math.max(from, Date.parse(s.infusion_started));
      const b = s.infusion_stopped ? Date.parse(s.infusion_stopped) : now;
      if (b > from) {
        g.fillStyle = 'rgba(123, 63, 228, 0.28)';
        g.fillRect(x(a), 0, x(b) - x(a), h - font * 1.2);
        g.fillStyle = '#b48cff';
        g.font = `${font}px sans-serif`;
        g.fillText('infusion', x(a) + 3, font);
      }
    }
    // Axes: time marks every 10 minutes; the value range.
    g.strokeStyle = '#2a3138';
    g.fillStyle = '#8a949c';
    g.font = `${font}px sans-serif`;
    g.lineWidth = 1;
    for (let m = 0; m <= 30; m += 10) {
      const xx = x(now - m * 60000);
      g.beginPath(); g.moveTo(xx, 0); g.lineTo(xx, h - font * 1.2); g.stroke();
      g.fillText(m === 0 ? 'now' : `-${m}m`, Math.min(xx - font, w - font * 2.2), h - 2);
    }
    g.fillText(String(Math.round(hi - pad)), 2, y(hi - pad) + font / 2);
    g.fillText(String(Math.round(lo + pad)), 2, y(lo + pad));
    // Alarm limits.
    for (const l of limits) {
      if (l.limit < lo || l.limit > hi) continue;
      g.strokeStyle = PRIORITY_COLOUR[l.priority];
      g.globalAlpha = l.armed ? 0.9 : 0.3;
      g.setLineDash([6 * ratio, 4 * ratio]);
      g.lineWidth = ratio;
      g.beginPath(); g.moveTo(left, y(l.limit)); g.lineTo(w, y(l.limit)); g.stroke();
    }
    g.globalAlpha = 1;
    g.setLineDash([]);
    // Limit values at the right edge.
    g.font = `${font}px sans-serif`;
    for (const l of limits) {
      if (!l.armed || l.limit < lo || l.limit > hi) continue;
      g.fillStyle = PRIORITY_COLOUR[l.priority];
      const label = String(Math.round(l.limit));
      g.fillText(label, w - g.measureText(label).width - 2, y(l.limit) - 2);
    }
    // Data, one column every 2 px: the mean as a line, the spread behind it; gaps where a
    // reading was flagged or the device was quiet.
    const expected = device ? device.interval_s * 1000 : 1000;
    const colours = ['#ffffff', '#c8d0d6', '#8a949c'];
    series.forEach((points, i) => {
      const cols = columns(points, from, x, 2 * ratio, expected * 3 + 2000);
      g.strokeStyle = colours[i];
      g.fillStyle = colours[i];
      g.globalAlpha = 0.35;
      g.lineWidth = 2 * ratio;
      g.beginPath();
      for (const c of cols) if (c.max > c.min) { g.moveTo(c.x, y(c.max)); g.lineTo(c.x, y(c.min)); }
      g.stroke();
      g.globalAlpha = 1;
      g.lineWidth = (i === 0 ? 2 : 1.5) * ratio;
      g.beginPath();
      for (const c of cols) {
        const yy = y(c.sum / c.n);
        if (c.start) g.moveTo(c.x, yy); else g.lineTo(c.x, yy);
      }
      g.stroke();
      if (expected >= 60000) for (const c of cols) g.fillRect(c.x - 2 * ratio, y(c.sum / c.n) - 2 * ratio, 4 * ratio, 4 * ratio);
    });
  }

  // Points bucketed into columns `step` px wide; a column starts a new segment after a gap.
  function columns(points, from, x, step, maxGap) {
    const cols = [];
    let cur = null;
    let prevT = null;
    let broken = true;
    for (const [t, v] of points) {
      if (t < from) { prevT = t; continue; }
      if (v === null || (prevT !== null && t - prevT > maxGap)) broken = true;
      prevT = t;
      if (v === null) continue;
      const c = Math.floor(x(t) / step);
      if (!cur || cur.c !== c || broken) {
        cur = { c, x: (c + 0.5) * step, sum: 0, n: 0, min: v, max: v, start: broken };
        cols.push(cur);
        broken = false;
      }
      cur.sum += v;
      cur.n += 1;
      cur.min = Math.min(cur.min, v);
      cur.max = Math.max(cur.max, v);
    }
    return cols;
  }

  function renderLog() {
    if (!S.logDirty) return;
    S.logDirty = false;
    $('log').replaceChildren(...S.log.slice(0, 12).map((entry) => {
      const li = el('li', entry.cls || '');
      li.append(el('span', 't', fmtClock(entry.ms)), document.createTextNode(entry.text));
      return li;
    }));
  }

  // Nurse actions: present only when this screen may act.
  function button(label, id, onclick) {
    const b = el('button', 'act', label);
    b.type = 'button';
    b.id = id;
    b.onclick = onclick;
    return b;
  }
  function renderActions() {
    const s = S.session;
    const phase = s ? s.phase : 'none';
    const armed = performance.now() < S.endArmedUntil;
    const key = `${canAct()}|${phase}|${armed}|${S.actionMsg}`;
    if (S.actionsKey === key) return;
    S.actionsKey = key;
    const box = $('actions');
    const items = [];
    if (canAct()) {
      if (!s || phase === 'ended') {
        const input = el('input');
        input.id = 'session-input';
        input.placeholder = 'Pseudonymous id, e.g. KAP-0042';
        input.maxLength = 64;
        input.pattern = '[A-Za-z0-9_-]{1,64}';
        input.autocomplete = 'off';
        items.push(input, button('Start session (baseline)', 'start-session', () => {
          const id = input.value.trim();
          if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) {
            S.actionMsg = 'A session id is 1 to 64 letters, digits, - or _ (never a name).';
            S.actionsKey = null;
            return;
          }
          act('/api/v1/session', { id }, 'Start session');
        }));
      } else {
        if (phase === 'baseline') items.push(button('Start infusion', 'start-infusion', () => act('/api/v1/session/phase', { phase: 'infusion' }, 'Start infusion')));
        if (phase === 'infusion') items.push(button('Stop infusion (recovery)', 'stop-infusion', () => act('/api/v1/session/phase', { phase: 'recovery' }, 'Stop infusion')));
        items.push(button(armed ? 'Confirm: end session' : 'End session', 'end-session', () => {
          if (performance.now() < S.endArmedUntil) {
            S.endArmedUntil = 0;
            act('/api/v1/session/phase', { phase: 'ended' }, 'End session');
          } else {
            S.endArmedUntil = performance.now() + 5000;
          }
          S.actionsKey = null;
        }));
        const note = el('input');
        note.id = 'note-input';
        note.placeholder = 'Note (no names)';
        note.maxLength = 500;
        note.autocomplete = 'off';
        items.push(note, button('Add note', 'add-note', async () => {
          const text = note.value.trim();
          if (!text) return;
          const answer = await act('/api/v1/session/note', { text }, 'Note');
          if (answer.ok) note.value = '';
        }));
      }
    }
    if (S.actionMsg) {
      const msg = el('span', '', S.actionMsg);
      msg.id = 'action-msg';
      msg.setAttribute('role', 'alert');
      items.push(msg);
    }
    // Keep what a nurse is typing across re-renders.
    const typed = {};
    for (const input of box.querySelectorAll('input')) typed[input.id] = input.value;
    box.replaceChildren(...items);
    for (const input of box.querySelectorAll('input')) if (typed[input.id]) input.value = typed[input.id];
  }

  function renderOffline() {
    const overlay = $('offline');
    const down = !S.online;
    overlay.hidden = !down;
    if (!down) return;
    const waited = performance.now() - S.offlineSince;
    const offline = S.everOnline || waited > HEARTBEAT_TIMEOUT_MS;
    if (overlay.classList.contains('connecting') === offline) {
      overlay.classList.toggle('connecting', !offline);
      if (offline) alignFlash(overlay, 'high');
    }
    setText($('offline-title'), offline ? 'MONITOR OFFLINE' : 'CONNECTING…');
    const since = S.offlineAt ? `: offline since ${fmtClock(S.offlineAt)} (${fmtDuration(waited / 1000)})` : '';
    setText($('offline-why'), `${S.offlineWhy}${offline ? since : ''}`);
    setText($('offline-retry'), S.retries ? `Reconnecting… (${S.retries} ${S.retries === 1 ? 'try' : 'tries'})` : '');
  }

  // The page's own watchdog: a CSS animation shows PANEL NOT UPDATING after 6 s unless this
  // loop keeps rewinding it, so a script that dies never leaves a calm-looking screen.
  function rewindStallWatchdog() {
    for (const anim of $('stalled').getAnimations()) anim.currentTime = 0;
  }

  let lastChart = 0;
  function frame() {
    watchdog();
    renderOffline();
    renderHeader();
    renderAlarms();
    renderTiles();
    renderActions();
    renderLog();
    scheduleAudio();
    const now = performance.now();
    if (now - lastChart > 1000) {
      lastChart = now;
      for (const tile of TILES) drawTrend(tile);
    }
    rewindStallWatchdog();
  }

  // --------------------------------------------------------------------- start
  function start() {
    $('sound-warning').onclick = enableSound;
    $('pause-all').onclick = () => act('/api/v1/alarms/audio-pause', {}, 'Pause all audio');
    $('signin').onsubmit = async (e) => {
      e.preventDefault();
      const token = $('token-input').value.trim();
      if (!token) return;
      if (await checkToken(token, true)) {
        $('token-input').value = '';
        $('signin').hidden = true;
        S.actionsKey = null;
      }
    };
    $('signin-cancel').onclick = () => { $('signin').hidden = true; };
    window.vitalwatchPanel = S;
    connect();
    setInterval(() => {
      try { frame(); } catch (err) { console.error('panel frame', err); }
    }, 250);
    frame();
  }
  start();
})();
