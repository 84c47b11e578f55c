// The dashboard page: live (server-sent events from the controller) or a
// report (window.BARRAGE_REPORT inlined by the controller at the end).
// Charts are uPlot's; everything else is plain DOM.
(function () {
  'use strict';
  var report = window.BARRAGE_REPORT || null;
  var points = [];
  var state = {};
  var config = {};
  var charts = {};
  var finished = false;

  var GRPC_CODES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND',
    'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED',
    'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];
  var COLORS = ['#0969da', '#cf222e', '#1a7f37', '#9a6700', '#8250df', '#bf3989', '#0550ae', '#116329',
    '#953800', '#6639ba', '#57606a', '#e16f24'];

  function $(id) { return document.getElementById(id); }
  function fmt(n, digits) {
    if (n === null || n === undefined || isNaN(n)) return '–';
    return Number(n).toLocaleString('en-US', { maximumFractionDigits: digits === undefined ? 0 : digits });
  }
  function bytes(n) {
    if (n === null || n === undefined) return '–';
    var u = ['B', 'kB', 'MB', 'GB', 'TB'], i = 0;
    while (Math.abs(n) >= 1000 && i < u.length - 1) { n /= 1000; i++; }
    return fmt(n, 1) + ' ' + u[i];
  }
  // Axis ticks: 1.5k, 2M.
  function si(v) {
    if (v === null || v === undefined) return '';
    var a = Math.abs(v);
    if (a >= 1e9) return fmt(v / 1e9, 1) + 'G';
    if (a >= 1e6) return fmt(v / 1e6, 1) + 'M';
    if (a >= 1e4) return fmt(v / 1e3, 1) + 'k';
    return fmt(v, a < 10 ? 2 : a < 100 ? 1 : 0);
  }
  function seriesLabel(key) {
    if (key === 'other') return 'other';
    var sp = key.lastIndexOf(' ');
    var method = key.slice(0, sp), status = key.slice(sp + 1);
    var code = GRPC_CODES[Number(status)];
    return (method || '(no method)') + ' ' + (code !== undefined && status !== '' ? code : status);
  }
  function setValue(id, value, text) {
    var el = $(id);
    el.setAttribute('data-value', String(value));
    el.textContent = text === undefined ? fmt(value) : text;
  }

  // Chart definitions: each maps the points to uPlot columns.
  function byKeys() {
    var keys = {};
    points.forEach(function (p) { Object.keys(p.by || {}).forEach(function (k) { keys[k] = true; }); });
    return Object.keys(keys).sort();
  }
  var DEFS = [
    { id: 'rps', title: 'Requests per second by method and status', series: function () {
        var s = [{ label: 'all', key: function (p) { return p.rps; } }];
        byKeys().forEach(function (k) { s.push({ label: seriesLabel(k), key: function (p) { return p.by && p.by[k] !== undefined ? p.by[k] : null; } }); });
        return s; } },
    { id: 'latency', title: 'Request duration quantiles (ms)', series: function () {
        return ['p50', 'p90', 'p95', 'p99'].map(function (q) { return { label: q, key: function (p) { return p[q]; } }; }); } },
    { id: 'errors', title: 'Failed requests (%)', series: function () {
        return [{ label: 'failed %', key: function (p) { return p.err === null || p.err === undefined ? null : p.err * 100; } }]; } },
    { id: 'vus', title: 'VUs and agents', series: function () {
        return [{ label: 'VUs', key: function (p) { return p.vus; } }, { label: 'VUs max', key: function (p) { return p.vus_max; } },
                { label: 'agents', key: function (p) { return p.agents; } }]; } },
    { id: 'iterations', title: 'Iterations and dropped iterations per second', series: function () {
        return [{ label: 'iterations/s', key: function (p) { return p.iters; } }, { label: 'dropped/s', key: function (p) { return p.dropped; } }]; } },
    { id: 'messages', title: 'Stream messages per second', series: function () {
        return [{ label: 'sent/s', key: function (p) { return p.msgs_sent; } }, { label: 'received/s', key: function (p) { return p.msgs_recv; } }]; } },
    { id: 'data', title: 'Data per second (bytes)', series: function () {
        return [{ label: 'sent', key: function (p) { return p.data_sent; } }, { label: 'received', key: function (p) { return p.data_recv; } }]; } },
  ];

  function chartWidth(el) { return Math.max(300, (el.clientWidth || 520) - 12); }

  function drawChart(def) {
    var box = $('chart-' + def.id);
    if (!box) {
      box = document.createElement('div');
      box.className = 'chart';
      box.id = 'chart-' + def.id;
      var h = document.createElement('h3');
      h.textContent = def.title;
      box.appendChild(h);
      $('charts').appendChild(box);
    }
    var series = def.series();
    var t0 = state.started || (points.length ? points[0].t - points[0].dt : 0);
    var data = [points.map(function (p) { return Math.round((p.t - t0) * 10) / 10; })];
    series.forEach(function (s) { data.push(points.map(s.key)); });
    var sig = series.map(function (s) { return s.label; }).join('|');
    var c = charts[def.id];
    if (!c || c.sig !== sig) {
      if (c) c.plot.destroy();
      var opts = {
        width: chartWidth(box), height: 220,
        series: [{}].concat(series.map(function (s, i) {
          return { label: s.label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: false,
                   value: function (u, v) { return v === null || v === undefined ? '–' : fmt(v, 2); } };
        })),
        axes: [{ label: 'seconds since start', size: 40, labelSize: 16 },
               { size: 56, values: function (u, splits) { return splits.map(si); } }],
        scales: { x: { time: false } },
      };
      charts[def.id] = c = { sig: sig, plot: new uPlot(opts, data, box) };
    } else {
      c.plot.setData(data);
    }
    box.setAttribute('data-points', String(points.length));
  }

  function row(table, cells) {
    var tr = document.createElement('tr');
    cells.forEach(function (c) {
      var td = document.createElement('td');
      if (c && typeof c === 'object') { td.textContent = c.text; if (c.cls) td.className = c.cls; } else { td.textContent = c; }
      tr.appendChild(td);
    });
    $(table).querySelector('tbody').appendChild(tr);
  }
  function clear(table) { $(table).querySelector('tbody').innerHTML = ''; }

  function render() {
    var t = state.totals || {};
    $('title').textContent = 'barrage' + (config.script ? ' — ' + config.script : '');
    $('mode').textContent = report ? 'report' : (finished ? 'finished' : 'live');
    var phase = state.phase || 'init';
    $('phase').textContent = phase;
    $('phase').className = 'badge ' + phase;
    $('elapsed').textContent = state.elapsed !== undefined ? fmt(state.elapsed, 1) + ' s' : '';
    var prog = state.scenarios || [];
    var mean = prog.length ? prog.reduce(function (a, s) { return a + (s.progress || 0); }, 0) / prog.length : 0;
    if (phase === 'done') mean = 1;
    $('progress-bar').style.width = (mean * 100).toFixed(1) + '%';
    setValue('total-requests', t.requests || 0);
    setValue('total-failed', t.failed || 0, fmt(t.failed || 0) + (t.requests ? ' (' + fmt(100 * (t.failed || 0) / t.requests, 2) + ' %)' : ''));
    setValue('total-iterations', t.iterations || 0);
    setValue('total-dropped', t.dropped || 0);
    setValue('total-vus', state.vus || 0, fmt(state.vus || 0) + ' / ' + fmt(state.vus_max || 0));
    setValue('total-agents', (state.agents || []).length);
    $('total-p95').textContent = t.duration ? fmt(t.duration.p95, 2) + ' ms' : '–';
    $('total-data').textContent = bytes(t.data_sent || 0) + ' / ' + bytes(t.data_recv || 0);
    $('total-msgs').textContent = fmt(t.msgs_sent || 0) + ' / ' + fmt(t.msgs_recv || 0);
    DEFS.forEach(drawChart);
    clear('thresholds');
    (state.thresholds || []).forEach(function (th) {
      row('thresholds', [th.key, th.source, th.value === null || th.value === undefined ? '–' : fmt(th.value, 3),
        { text: th.ok ? 'pass' : 'fail', cls: th.ok ? 'ok' : 'bad' }]);
    });
    if (!(state.thresholds || []).length) row('thresholds', ['(none)', '', '', '']);
    clear('agents');
    (state.agents || []).forEach(function (a) {
      row('agents', [a.name, fmt(a.vus), fmt(a.iterations), { text: a.state, cls: a.state === 'lost' || a.state === 'failed' ? 'bad' : '' }, a.segment || '']);
    });
    clear('scenarios');
    prog.forEach(function (s) { row('scenarios', [s.name, fmt(s.vus), fmt(s.iterations), fmt(100 * (s.progress || 0), 1) + ' %']); });
    document.body.setAttribute('data-phase', phase);
    document.body.setAttribute('data-points', String(points.length));
  }

  function renderReportExtras() {
    var s = report.summary || {};
    if (s.text) { $('summary').textContent = s.text; $('summary-box').hidden = false; }
    var checks = [];
    (function walk(g) {
      if (!g) return;
      var cs = g.checks || [];
      if (!Array.isArray(cs)) cs = Object.keys(cs).map(function (k) { return cs[k]; });
      cs.forEach(function (c) { checks.push(c); });
      var gs = g.groups || [];
      if (!Array.isArray(gs)) gs = Object.keys(gs).map(function (k) { return gs[k]; });
      gs.forEach(walk);
    })(s.root_group);
    if (checks.length) {
      $('checks-box').hidden = false;
      checks.forEach(function (c) { row('checks', [(c.path || c.name), fmt(c.passes), fmt(c.fails)]); });
    }
  }

  function append(newPoints) {
    var last = points.length ? points[points.length - 1].t : -Infinity;
    (newPoints || []).forEach(function (p) { if (p.t > last) { points.push(p); last = p.t; } });
  }

  function applySnapshot(d) {
    config = d.config || config;
    points = d.points || [];
    state = d.state || {};
    render();
  }

  window.barrageDashboard = { points: function () { return points.length; }, state: function () { return state; },
                              finished: function () { return finished; } };

  if (report) {
    finished = true;
    applySnapshot(report);
    renderReportExtras();
    document.body.setAttribute('data-ready', '1');
    return;
  }
  var es = new EventSource('events');
  es.addEventListener('snapshot', function (e) { applySnapshot(JSON.parse(e.data)); document.body.setAttribute('data-ready', '1'); });
  es.addEventListener('update', function (e) {
    var d = JSON.parse(e.data);
    if (d.reset) { points = []; }
    append(d.points);
    state = d.state || state;
    render();
  });
  es.addEventListener('end', function () {
    finished = true;
    es.close();
    render();
    document.body.setAttribute('data-finished', '1');
  });
  es.onerror = function () {
    if (!finished) { $('phase').textContent = state.phase === 'done' ? 'done' : 'disconnected'; }
  };
  window.addEventListener('resize', function () {
    Object.keys(charts).forEach(function (id) {
      var box = $('chart-' + id);
      charts[id].plot.setSize({ width: chartWidth(box), height: 220 });
    });
  });
})();
