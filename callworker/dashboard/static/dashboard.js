// callworker dashboard: the calls up now and the 15-minute chart from /api/events
// (a snapshot, then live events), the last hour's KPIs from /api/stats and /api/mos.
// Everything shown is set as text, never parsed as HTML.
(function () {
  'use strict';
  var TERMINAL = { 'call.completed': 1, 'call.failed': 1, 'call.cancelled': 1 };
  var FIELDS = ['status', 'direction', 'destination_number', 'caller_id_number', 'on_hold', 'muted',
    'initiated_at', 'answered_at', 'bridged_with', 'node', 'user_id'];
  var params = new URLSearchParams(location.search);
  var token = params.get('token') || '';
  var tenant = params.get('tenant') || '';
  var calls = new Map();   // call_id -> snapshot (with seq and tenant)
  var ended = new Map();   // call_id -> last seq seen of a call that ended
  var hist = null;         // {start (ms), bucket (ms), initiated [], concurrent []}
  var offset = 0;          // server clock minus ours, ms
  var source = null;
  var statsTimer = null;

  function $(id) { return document.getElementById(id); }
  function url(path, extra) {
    var q = new URLSearchParams({ token: token });
    if (tenant) q.set('tenant', tenant);
    Object.keys(extra || {}).forEach(function (k) { q.set(k, extra[k]); });
    return path + '?' + q.toString();
  }
  function now() { return Date.now() + offset; }
  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  function clock(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var h = Math.floor(seconds / 3600), m = Math.floor(seconds / 60) % 60, s = seconds % 60;
    var mm = (h ? String(m).padStart(2, '0') : String(m));
    return (h ? h + ':' : '') + mm + ':' + String(s).padStart(2, '0');
  }
  function pct(x) { return x === null || x === undefined ? '–' : (100 * x).toFixed(1) + ' %'; }
  function num(x, digits, unit) {
    return x === null || x === undefined ? '–' : Number(x).toFixed(digits) + (unit || '');
  }
  function problem(text) { var p = $('problem'); p.hidden = !text; p.textContent = text || ''; }

  // ------------------------------------------------------------ calls up now
  function renderCalls() {
    var body = $('calls-body');
    var rows = Array.from(calls.values()).sort(function (a, b) {
      return String(a.initiated_at).localeCompare(String(b.initiated_at));
    });
    body.textContent = '';
    rows.forEach(function (c) {
      var tr = el('tr');
      tr.dataset.callId = c.call_id;
      tr.appendChild(el('td', c.tenant, 'tenant-col'));
      var number = c.direction === 'inbound' ? c.caller_id_number : c.destination_number;
      tr.appendChild(el('td', number || '–', 'number'));
      var st = el('td');
      st.appendChild(el('span', String(c.status).replace('_', ' '), 'status ' + c.status));
      tr.appendChild(st);
      tr.appendChild(el('td', '', 'duration'));
      var flags = [];
      if (c.on_hold) flags.push('held');
      if (c.muted) flags.push('muted');
      tr.appendChild(el('td', flags.join(', ') || '–', 'flags'));
      tr.appendChild(el('td', c.bridged_with ? String(c.bridged_with).slice(0, 8) : '–', 'bridged'));
      tr.appendChild(el('td', String(c.call_id).slice(0, 8), 'muted'));
      body.appendChild(tr);
    });
    $('calls-count').textContent = String(rows.length);
    $('calls-empty').hidden = rows.length > 0;
    tickDurations();
  }
  function tickDurations() {
    var t = now();
    Array.prototype.forEach.call($('calls-body').rows, function (tr) {
      var c = calls.get(tr.dataset.callId);
      if (!c) return;
      var since = c.answered_at || c.initiated_at;
      var text = since ? clock((t - Date.parse(since)) / 1000) : '–';
      tr.querySelector('.duration').textContent = c.answered_at ? text : text + ' (not answered)';
    });
  }

  // ------------------------------------------------------------ events
  function applyEvent(ev) {
    if (!ev || typeof ev.type !== 'string') return;
    if (ev.type.indexOf('flashcall.') === 0) { statsSoon(); return; }
    if (ev.type.indexOf('call.') !== 0 || !ev.call_id) return;
    var id = ev.call_id, seq = Number(ev.seq) || 0;
    var known = calls.get(id);
    if ((known && known.seq >= seq) || (ended.has(id) && ended.get(id) >= seq)) return;
    if (TERMINAL[ev.type] || ev.type === 'call.cdr') {
      calls.delete(id);
      ended.set(id, seq);
      statsSoon();
    } else if (!ended.has(id)) {
      var next = Object.assign({}, known || {}, { call_id: id, tenant: ev.tenant, seq: seq });
      var data = ev.data || {};
      FIELDS.forEach(function (f) { if (f in data) next[f] = data[f]; });
      calls.set(id, next);
      if (ev.type === 'call.initiated' && !known) countInitiated(Date.parse(ev.occurred_at) || now());
    }
    renderSoon();
  }
  // A busy tenant sends many events a second: the table is redrawn at most five times a second.
  var renderTimer = null;
  function renderSoon() {
    if (!renderTimer) renderTimer = setTimeout(function () { renderTimer = null; renderCalls(); }, 200);
  }
  function applySnapshot(snap) {
    offset = Date.parse(snap.now) - Date.now();
    var v = snap.viewer || {};
    $('scope').textContent = v.tenant ? 'tenant ' + v.tenant : 'all tenants';
    $('calls').classList.toggle('all-tenants', !v.tenant);
    if (v.admin) showPicker(v.tenants || [], v.tenant || '');
    calls.clear(); ended.clear();
    (snap.calls || []).forEach(function (c) { calls.set(c.call_id, c); });
    var h = snap.history;
    hist = { start: Date.parse(h.start), bucket: h.bucket_s * 1000, initiated: h.initiated.slice(),
      concurrent: h.concurrent.slice() };
    renderCalls();
    roll();
    statsNow();
  }
  function showPicker(names, current) {
    var select = $('tenant-select');
    if (select.options.length === 1) {
      names.forEach(function (n) { var o = el('option', n); o.value = n; select.appendChild(o); });
      select.addEventListener('change', function () {
        var q = new URLSearchParams(location.search);
        if (select.value) q.set('tenant', select.value); else q.delete('tenant');
        location.search = q.toString();
      });
    }
    select.value = current;
    $('pick').hidden = false;
  }
  function connect() {
    if (source) source.close();
    source = new EventSource(url('/api/events'));
    source.addEventListener('snapshot', function (m) {
      $('link').textContent = 'live'; $('link').className = 'link up'; problem('');
      applySnapshot(JSON.parse(m.data));
    });
    source.onmessage = function (m) { applyEvent(JSON.parse(m.data)); };
    source.onerror = function () {
      $('link').textContent = 'reconnecting'; $('link').className = 'link down';
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 3000);
    };
  }

  // ------------------------------------------------------------ chart
  function countInitiated(t) {
    if (!hist) return;
    roll();
    var i = Math.floor((t - hist.start) / hist.bucket);
    if (i >= 0 && i < hist.initiated.length) hist.initiated[i] += 1;
  }
  function roll() {
    if (!hist) return;
    var n = hist.initiated.length;
    while (now() >= hist.start + n * hist.bucket) {
      hist.initiated.shift(); hist.initiated.push(0);
      hist.concurrent.shift(); hist.concurrent.push(calls.size);
      hist.start += hist.bucket;
    }
    hist.concurrent[n - 1] = calls.size;
  }
  function draw(canvas, values, color, bars) {
    var ratio = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
    canvas.width = Math.max(1, Math.round(w * ratio)); canvas.height = Math.max(1, Math.round(h * ratio));
    var g = canvas.getContext('2d');
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, w, h);
    var top = Math.max.apply(null, values.concat([bars ? 0.2 : 1]));
    var pad = 16, step = (w - 2) / values.length;
    g.fillStyle = '#6b7480'; g.font = '11px system-ui, sans-serif';
    g.fillText('max ' + (Math.round(top * 10) / 10), 4, 12);
    g.fillText('-15 min', 4, h - 3); g.fillText('now', w - 24, h - 3);
    g.fillStyle = color; g.strokeStyle = color; g.lineWidth = 1.5;
    var y = function (v) { return h - pad - (h - 2 * pad) * (v / top); };
    if (bars) {
      values.forEach(function (v, i) { if (v > 0) g.fillRect(1 + i * step, y(v), Math.max(1, step - 1), h - pad - y(v)); });
    } else {
      g.beginPath();
      values.forEach(function (v, i) { var x = 1 + (i + 0.5) * step; if (i) g.lineTo(x, y(v)); else g.moveTo(x, y(v)); });
      g.stroke();
    }
  }
  function drawCharts() {
    if (!hist) return;
    roll();
    var secs = hist.bucket / 1000;
    var cps = hist.initiated.map(function (n) { return n / secs; });
    draw($('chart-cps'), cps, '#1f6feb', true);
    draw($('chart-concurrent'), hist.concurrent, '#d9480f', false);
    var last = cps.length - 1;
    $('now-cps').textContent = ((cps[last] + cps[last - 1]) / 2).toFixed(1);
    $('now-concurrent').textContent = String(calls.size);
  }

  // ------------------------------------------------------------ KPIs
  function bars(container, items) {
    container.textContent = '';
    var top = Math.max.apply(null, items.map(function (i) { return i[1]; }).concat([1]));
    if (!items.length) container.appendChild(el('p', 'Nothing in the last hour.', 'muted'));
    items.forEach(function (item) {
      var row = el('div', null, 'bar');
      row.dataset.label = item[0];
      row.appendChild(el('span', item[0], 'label'));
      var fill = el('span', null, 'fill'); fill.style.width = (100 * item[1] / top) + '%';
      var track = el('span', null, 'track'); track.appendChild(fill); row.appendChild(track);
      row.appendChild(el('span', item[1], 'n'));
      container.appendChild(row);
    });
  }
  function fetchJson(path, extra) {
    return fetch(url(path, extra), { cache: 'no-store' }).then(function (r) {
      if (r.status === 401) throw new Error('This token is not valid (or no longer).');
      if (!r.ok) throw new Error('The worker could not answer (' + r.status + ').');
      return r.json();
    });
  }
  function showTotals(all) {
    var g = (all.groups || [])[0] || {};
    $('kpi-calls').textContent = g.calls === undefined ? '0' : String(g.calls);
    $('kpi-asr').textContent = pct(g.asr);
    $('kpi-ner').textContent = pct(g.ner);
    $('kpi-acd').textContent = g.acd_s === null || g.acd_s === undefined ? '–' : clock(g.acd_s);
    $('kpi-pdd').textContent = g.pdd_ms_p50 === null || g.pdd_ms_p50 === undefined ? '–'
      : num(g.pdd_ms_p50 / 1000, 1) + ' / ' + num(g.pdd_ms_p95 / 1000, 1) + ' s';
    $('kpi-minutes').textContent = num(g.minutes, 1);
    $('kpi-mos').textContent = num(g.avg_mos, 2);
    var f = g.flashcall || {};
    $('kpi-flash').textContent = f.orders ? pct(f.conversion) : '–';
    $('kpi-flash-detail').textContent = f.orders ? (f.verified || 0) + ' of ' + f.orders + ' verified' : '';
    bars($('outcomes'), g.calls ? [['answered', g.answered || 0], ['failed', g.failed || 0],
      ['cancelled', g.cancelled || 0]] : []);
    var causes = Object.keys(g.hangup_causes || {}).map(function (k) { return [k, g.hangup_causes[k]]; });
    causes.sort(function (a, b) { return b[1] - a[1]; });
    bars($('causes'), causes);
  }
  function showGateways(perGateway) {
    var body = $('gateways-body'); body.textContent = '';
    (perGateway.groups || []).forEach(function (r) {
      var tr = el('tr');
      [r.key === null || r.key === undefined ? '(none)' : r.key, r.calls, pct(r.asr), pct(r.ner),
        r.acd_s === null || r.acd_s === undefined ? '–' : clock(r.acd_s), r.pdd_ms_p50 === null || r.pdd_ms_p50 === undefined ? '–' : num(r.pdd_ms_p50 / 1000, 1, ' s'),
        num(r.minutes, 1), num(r.avg_mos, 2)].forEach(function (v) { tr.appendChild(el('td', v)); });
      body.appendChild(tr);
    });
  }
  function showMos(mos) {
    var bands = (mos.bands || []).map(function (b) { return [b.band, b.calls]; });
    bars($('mos'), bands.some(function (b) { return b[1] > 0; }) ? bands : []);
  }
  function statsNow() {
    clearTimeout(statsTimer); statsTimer = null;
    var to = new Date(now()), from = new Date(now() - 3600 * 1000);
    var span = { from: from.toISOString(), to: to.toISOString() };
    var failed = null;
    var fail = function (e) { failed = failed || e.message; };
    Promise.all([
      fetchJson('/api/stats', Object.assign({ group_by: 'none' }, span)).then(showTotals, fail),
      fetchJson('/api/stats', Object.assign({ group_by: 'gateway' }, span)).then(showGateways, fail),
      fetchJson('/api/mos', span).then(showMos, fail)
    ]).then(function () { problem(failed); });
  }
  function statsSoon() { if (!statsTimer) statsTimer = setTimeout(statsNow, 1500); }

  if (!token) { problem('Open this page with ?token=…'); return; }
  connect();
  setInterval(function () { tickDurations(); drawCharts(); }, 1000);
  setInterval(statsNow, 15000);
  window.addEventListener('resize', drawCharts);
}());
