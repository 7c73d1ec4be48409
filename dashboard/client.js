// Drawing code of the dashboard page (inlined into page.html by page.ts; no build step, no library).
// Every chart is an SVG built from the JSON endpoints. Each bar carries data-* attributes with the exact
// number it stands for and shows that number as text, so a reader (and the browser test) can check it.
'use strict';

const PALETTE = ['#2563eb', '#16a34a', '#d97706', '#9333ea', '#dc2626', '#0891b2', '#4b5563', '#db2777'];
const SVGNS = 'http://www.w3.org/2000/svg';

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}
function fmt(n, digits) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  return Number(n).toLocaleString('en-US', { maximumFractionDigits: digits === undefined ? 0 : digits, minimumFractionDigits: 0 });
}
async function getJSON(path) {
  const res = await fetch(path, { cache: 'no-store' });
  if (!res.ok) throw new Error(path + ': HTTP ' + res.status);
  return res.json();
}
function setState(id, state, message) {
  const el = document.getElementById(id);
  el.dataset.state = state;
  if (message !== undefined) el.dataset.message = message;
}
function niceMax(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
function addDays(iso, n) {
  const d = new Date(iso + 'T00:00:00Z');
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

// ---- daily active devices: grouped bars, one group per day, one bar per app -------------------------

/** The views' threshold, as the last analytics answer gave it. */
let lastK = null;

/** 95 % of the noise lies within this many standard deviations (normal approximation). */
const Z95 = 1.96;

function privacyNote(ans) {
  if (ans.answers !== 'private') return 'Exact answers (privileged role; every use is logged).';
  return (
    'Differentially private: each number carries noise (epsilon ' +
    ans.epsilon +
    ' per panel; ' +
    ans.spent +
    ' of the daily ' +
    ans.dailyEpsilon +
    ' spent), whiskers show its 95 % range; complete days only.'
  );
}

function renderDau(ans) {
  const host = document.getElementById('dau-chart');
  document.getElementById('dau-note').textContent =
    'Devices per UTC day and app (daily tokens, summed over released cells: day × app × version × model × OS × country), ' +
    ans.from +
    ' to ' +
    ans.to +
    '; cells under ' +
    ans.k +
    ' devices are left out of every total. ' +
    privacyNote(ans);
  lastK = ans.k;
  if (ans.error) {
    host.innerHTML = '<div class="error">' + esc(ans.error) + '</div>';
    return setState('dau', 'error', ans.error);
  }
  if (ans.rows.length === 0) {
    host.innerHTML = '<div class="empty">No data yet.</div>';
    return setState('dau', 'empty');
  }
  const apps = [...new Set(ans.rows.map((r) => r.app_id))].sort();
  const first = ans.rows.map((r) => r.day).sort()[0];
  const days = [];
  for (let d = first; d <= ans.to && days.length < 400; d = addDays(d, 1)) days.push(d);
  const value = new Map(ans.rows.map((r) => [r.day + '|' + r.app_id, Number(r.active_devices)]));
  const sdOf = new Map(ans.rows.map((r) => [r.day + '|' + r.app_id, r.active_devices_sd === undefined ? 0 : Number(r.active_devices_sd)]));
  const max = niceMax(Math.max(...ans.rows.map((r) => Number(r.active_devices) + Z95 * (r.active_devices_sd === undefined ? 0 : Number(r.active_devices_sd)))));
  const W = 1000,
    H = 300,
    L = 56,
    R = 10,
    T = 16,
    B = 34;
  const gw = (W - L - R) / days.length;
  const bw = Math.min(48, (gw * 0.8) / apps.length);
  const y = (v) => T + (H - T - B) * (1 - Math.max(0, Math.min(max, v)) / max);
  let s = '<svg xmlns="' + SVGNS + '" viewBox="0 0 ' + W + ' ' + H + '" role="img" aria-label="Daily active devices by app">';
  for (let i = 0; i <= 4; i++) {
    const v = (max * i) / 4;
    s += '<line x1="' + L + '" x2="' + (W - R) + '" y1="' + y(v) + '" y2="' + y(v) + '" stroke="#e5e7eb"/>';
    s += '<text x="' + (L - 6) + '" y="' + (y(v) + 4) + '" font-size="11" text-anchor="end" fill="#6b7280">' + fmt(v) + '</text>';
  }
  days.forEach((day, di) => {
    const gx = L + di * gw + (gw - bw * apps.length) / 2;
    apps.forEach((app, ai) => {
      const v = value.get(day + '|' + app);
      if (v === undefined) return;
      const x = gx + ai * bw;
      s +=
        '<rect class="bar" data-day="' +
        esc(day) +
        '" data-app="' +
        esc(app) +
        '" data-value="' +
        v +
        '" x="' +
        x.toFixed(1) +
        '" y="' +
        y(v).toFixed(1) +
        '" width="' +
        (bw - 2).toFixed(1) +
        '" height="' +
        (y(0) - y(v)).toFixed(1) +
        '" fill="' +
        PALETTE[ai % PALETTE.length] +
        '"><title>' +
        esc(app) +
        ' ' +
        esc(day) +
        ': ' +
        fmt(v) +
        ' devices</title></rect>';
      const sd = sdOf.get(day + '|' + app);
      if (sd > 0) s += whisker(x + (bw - 2) / 2, y(v - Z95 * sd), y(v + Z95 * sd), 'v', sd);
      s +=
        '<text class="bar-label" x="' +
        (x + (bw - 2) / 2).toFixed(1) +
        '" y="' +
        (y(v + Z95 * sd) - 4).toFixed(1) +
        '" font-size="11" text-anchor="middle">' +
        fmt(v) +
        '</text>';
    });
    s += '<text x="' + (L + di * gw + gw / 2).toFixed(1) + '" y="' + (H - 12) + '" font-size="12" text-anchor="middle" fill="#374151">' + esc(day) + '</text>';
  });
  s += '<line x1="' + L + '" x2="' + (W - R) + '" y1="' + y(0) + '" y2="' + y(0) + '" stroke="#9ca3af"/></svg>';
  host.innerHTML = s;
  document.getElementById('dau-legend').innerHTML = apps
    .map((a, i) => '<span><i style="background:' + PALETTE[i % PALETTE.length] + '"></i>' + esc(a) + '</span>')
    .join('');
  setState('dau', 'ready');
}

/** An error bar: a line across [a, b] at `at` (vertical for 'v', horizontal for 'h'), with end caps. */
function whisker(at, a, b, dir, sd) {
  const line = (x1, y1, x2, y2) =>
    '<line x1="' + x1.toFixed(1) + '" y1="' + y1.toFixed(1) + '" x2="' + x2.toFixed(1) + '" y2="' + y2.toFixed(1) + '" stroke="#111827" stroke-width="1.2"/>';
  const c = 4;
  const body =
    dir === 'v'
      ? line(at, a, at, b) + line(at - c, a, at + c, a) + line(at - c, b, at + c, b)
      : line(a, at, b, at) + line(a, at - c, a, at + c) + line(b, at - c, b, at + c);
  return '<g class="error-bar" data-sd="' + sd + '">' + body + '</g>';
}

// ---- per app version: horizontal bars ------------------------------------------------------------------

function renderVersions(id, ans, key, o) {
  const host = document.getElementById(id + '-chart');
  document.getElementById(id + '-note').textContent = o.note(ans);
  if (ans.error) {
    host.innerHTML = '<div class="error">' + esc(ans.error) + '</div>';
    return setState(id, 'error', ans.error);
  }
  const rows = ans.rows.filter((r) => r[key] !== null && r[key] !== undefined);
  if (rows.length === 0) {
    const why = ans.rows.length > 0 && o.missing ? o.missing(ans) : 'No data yet.';
    host.innerHTML = '<div class="empty">' + esc(why) + '</div>';
    return setState(id, 'empty');
  }
  const apps = [...new Set(ans.rows.map((r) => r.app_id))].sort();
  const sdKey = key + '_sd';
  const values = rows.map((r) => Number(r[key]));
  const [lo, hi] = o.scale(values);
  const W = 620,
    rowH = 26,
    L = 200,
    R = 70,
    T = 8;
  const H = T + rows.length * rowH + 24;
  const x = (v) => L + ((W - L - R) * (Math.max(lo, Math.min(hi, v)) - lo)) / (hi - lo || 1);
  let s = '<svg xmlns="' + SVGNS + '" viewBox="0 0 ' + W + ' ' + H + '" role="img">';
  for (let i = 0; i <= 4; i++) {
    const v = lo + ((hi - lo) * i) / 4;
    s += '<line x1="' + x(v) + '" x2="' + x(v) + '" y1="' + T + '" y2="' + (H - 20) + '" stroke="#e5e7eb"/>';
    s += '<text x="' + x(v) + '" y="' + (H - 6) + '" font-size="10" text-anchor="middle" fill="#6b7280">' + fmt(v, 1) + o.unit + '</text>';
  }
  rows.forEach((r, i) => {
    const v = Number(r[key]);
    const yy = T + i * rowH;
    const color = o.color ? o.color(v) : PALETTE[apps.indexOf(r.app_id) % PALETTE.length];
    s +=
      '<text x="' +
      (L - 8) +
      '" y="' +
      (yy + 16) +
      '" font-size="12" text-anchor="end">' +
      esc(r.app_id) +
      ' <tspan font-weight="600">' +
      esc(r.app_version) +
      '</tspan></text>';
    s +=
      '<rect class="bar" data-app="' +
      esc(r.app_id) +
      '" data-version="' +
      esc(r.app_version) +
      '" data-value="' +
      v +
      '" x="' +
      L +
      '" y="' +
      (yy + 4) +
      '" width="' +
      Math.max(1, x(v) - L).toFixed(1) +
      '" height="' +
      (rowH - 8) +
      '" fill="' +
      color +
      '"><title>' +
      esc(o.title(r)) +
      '</title></rect>';
    const sd = r[sdKey] === undefined || r[sdKey] === null ? 0 : Number(r[sdKey]);
    if (sd > 0) s += whisker(yy + rowH / 2, x(v - Z95 * sd), x(v + Z95 * sd), 'h', sd);
    s += '<text class="bar-label" x="' + (x(v + Z95 * sd) + 6).toFixed(1) + '" y="' + (yy + 16) + '" font-size="12">' + fmt(v, 2) + o.unit + '</text>';
  });
  s += '</svg>';
  host.innerHTML = s;
  setState(id, 'ready');
}

function renderCrash(ans) {
  const range = (a) =>
    a.from +
    ' to ' +
    a.to +
    ' (' +
    (a.from === a.to ? 'one day' : 'device-days over the range') +
    '); cells under ' +
    a.k +
    ' devices are left out of every total. ' +
    privacyNote(a);
  renderVersions('crash-free', ans, 'crash_free_devices_pct', {
    unit: '%',
    note: (a) => '100 × (1 − crashed devices ÷ active devices), ' + range(a),
    // Crash-free rates live near 100 %: the axis starts just below the lowest value (its ticks say where).
    scale: (vs) => [Math.max(0, Math.floor(Math.min(...vs) - 1)), 100],
    color: (v) => (v >= 99 ? '#15803d' : v >= 97 ? '#d97706' : '#b91c1c'),
    title: (r) =>
      r.app_id +
      ' ' +
      r.app_version +
      ': ' +
      r.crash_free_devices_pct +
      ' % crash-free (' +
      r.crashed_device_days +
      ' of ' +
      r.device_days +
      ' device-days crashed)',
  });
  renderVersions('crashes-per-1000', ans, 'crashes_per_1000_sessions', {
    unit: '',
    note: (a) => '1000 × crashes ÷ sessions, ' + range(a),
    scale: (vs) => [0, niceMax(Math.max(...vs))],
    color: (v) => (v < 10 ? '#15803d' : v < 30 ? '#d97706' : '#b91c1c'),
    title: (r) => r.app_id + ' ' + r.app_version + ': ' + r.crashes + ' crashes in ' + r.sessions + ' sessions',
    missing: () => 'No sessions in these groups.',
  });
}

// ---- live ----------------------------------------------------------------------------------------------

function spark(id, values, color) {
  const el = document.getElementById(id);
  const vs = values.filter((v) => v !== null && v !== undefined);
  if (vs.length < 2) {
    el.innerHTML = '';
    return;
  }
  const max = Math.max(1e-9, ...vs);
  const n = values.length;
  const pts = values
    .map((v, i) => (v === null || v === undefined ? null : ((300 * i) / (n - 1)).toFixed(1) + ',' + (34 - (32 * v) / max).toFixed(1)))
    .filter(Boolean)
    .join(' ');
  el.innerHTML = '<polyline fill="none" stroke="' + color + '" stroke-width="1.5" points="' + pts + '"/>';
}

function setKpi(id, v, digits) {
  const el = document.getElementById(id);
  el.dataset.value = v === null || v === undefined ? '' : String(v);
  el.textContent = fmt(v, digits);
}

function renderLive(l) {
  setKpi('live-throughput', l.ingest.events_per_s, 0);
  setKpi('live-reject-rate', l.ingest.reject_rate_pct, 2);
  setKpi('live-lag', l.aggregator.consumer_lag, 0);
  const h = l.history.slice(-90);
  spark(
    'spark-throughput',
    h.map((p) => p.events_per_s),
    '#2563eb',
  );
  spark(
    'spark-reject',
    h.map((p) => p.reject_rate_pct),
    '#b91c1c',
  );
  spark(
    'spark-lag',
    h.map((p) => p.lag),
    '#9333ea',
  );
  const t = l.ingest.counters;
  const tot = document.getElementById('live-totals');
  tot.dataset.accepted = String(t.accepted);
  tot.dataset.rejected = String(t.rejected);
  tot.dataset.droppedConsent = String(t.dropped_consent);
  tot.textContent =
    'Ingest counters: ' +
    fmt(t.accepted) +
    ' events accepted · ' +
    fmt(t.rejected) +
    ' rejected · ' +
    fmt(t.dropped_consent) +
    ' dropped for consent · window ' +
    fmt(l.window_s, 1) +
    ' s';
  document.getElementById('live-targets').innerHTML = l.targets
    .map(
      (x) =>
        '<span><i class="dot ' +
        (x.up ? 'up' : 'down') +
        '"></i>' +
        esc(x.kind) +
        ' ' +
        esc(x.url.replace(/^https?:\/\//, '')) +
        (x.up ? '' : ' (' + esc(x.error || 'down') + ')') +
        '</span>',
    )
    .join('');
  setState('live', 'ready');
}

// ---- refresh loops -------------------------------------------------------------------------------------

async function refreshAnalytics() {
  try {
    const [dau, crash] = await Promise.all([getJSON('/api/dau'), getJSON('/api/crash')]);
    renderDau(dau);
    renderCrash(crash);
  } catch (e) {
    for (const id of ['dau', 'crash-free', 'crashes-per-1000']) setState(id, 'error', String(e));
  }
}
async function refreshLive() {
  try {
    renderLive(await getJSON('/api/live'));
  } catch (e) {
    setState('live', 'error', String(e));
  }
}

function stamp() {
  document.getElementById('sub').textContent =
    'database ' +
    SETTINGS.database +
    ' · last ' +
    SETTINGS.days +
    ' days · k = ' +
    lastK +
    ' · analytics updated ' +
    new Date().toISOString().slice(11, 19) +
    ' UTC';
}
refreshAnalytics().then(stamp);
refreshLive();
setInterval(() => refreshAnalytics().then(stamp), 10000);
setInterval(refreshLive, Math.max(1000, SETTINGS.scrapeIntervalMs));
