/* safecity console — camera health (/health).
 *
 * data-testid: health-table, health-list, health-row (data-camera=<name>; class "stale"
 * when the report is old), health-state, empty. Updated live from SSE `health`.
 *
 * The cluster (GET /api/v1/cluster, asked again every CLUSTER_MS), shown only once a
 * coordinator has reported: cluster (the section), cluster-list, per coordinator
 * cluster-coordinator (data-coordinator=<name>) with cluster-state (class "reporting",
 * "not-reporting" or "ended"), cluster-nodes / cluster-node (data-node=<id>),
 * cluster-workers / cluster-worker (data-worker=<id>; class "outbox-error" when its outbox
 * cannot store, "outbox-late" when its backlog is old), worker-outbox, worker-error,
 * cluster-cameras / cluster-camera (data-camera=<name>), cluster-camera-state.
 *
 * The alert sinks (GET /api/v1/alerts every ALERTS_MS; auditors and admins): alerts (the
 * section, shown when sinks are configured), alerts-table, alerts-list, alerts-sink
 * (data-sink=<name>; class "pending" while it has alerts to take), alerts-pending.
 */
(function () {
  'use strict';
  var list = document.getElementById('health-list');
  var empty = document.getElementById('empty');

  function row(h) {
    return SC.el('tr', {
      testid: 'health-row', data: { camera: h.camera }, class: h.stale ? 'stale' : null
    }, [
      SC.el('td', { text: h.camera }),
      SC.el('td', { testid: 'health-state' }, [
        SC.el('span', { class: 'badge state-' + h.state, text: h.state }),
        h.stale ? SC.el('span', { class: 'stale-mark', text: ' stale' }) : null
      ]),
      SC.el('td', { class: 'num', text: SC.number(h.frames_in) }),
      SC.el('td', { class: 'num', text: SC.number(h.frames_analysed) }),
      SC.el('td', { class: 'num', text: SC.number(h.lag_s, 1) }),
      SC.el('td', { class: 'num', text: SC.number(h.detector_ms, 0) }),
      SC.el('td', { class: 'num', text: SC.number(h.reconnects) }),
      SC.el('td', { class: 'error-text', text: h.last_error || '' }),
      SC.el('td', {}, SC.time(h.updated_at))
    ]);
  }

  function show(items) {
    SC.clear(list);
    items.slice().sort(function (a, b) {
      return a.camera < b.camera ? -1 : a.camera > b.camera ? 1 : 0;
    }).forEach(function (h) {
      list.appendChild(row(h));
    });
    empty.hidden = items.length > 0;
  }

  SC.live('health', function (items) {
    show(items || []);
  });

  SC.api('/api/v1/health', { params: { limit: 500 } }).then(function (page) {
    show(page.items || []);
  }).catch(SC.showError);

  // --- the cluster ----------------------------------------------------------------------
  var CLUSTER_MS = 5000;
  var clusterSection = document.getElementById('cluster');
  var clusterList = document.getElementById('cluster-list');

  function table(testid, heads, rows) {
    return SC.el('table', { class: 'list cluster-table', testid: testid }, [
      SC.el('thead', {}, SC.el('tr', {}, heads.map(function (h) {
        return SC.el('th', { text: h });
      }))),
      SC.el('tbody', {}, rows)
    ]);
  }

  function megabytes(bytes) {
    return ((bytes || 0) / 1e6).toFixed(1) + ' MB';
  }

  function seconds(value) {
    return Math.round(value) + ' s';
  }

  /** "reporting", "NOT reporting for 62 s" or "ended", as `safecity cluster status` says. */
  function condition(c) {
    if (c.ended) return { key: 'ended', text: 'ended' };
    if (c.reporting) return { key: 'reporting', text: 'reporting' };
    return { key: 'not-reporting', text: 'NOT reporting for ' + seconds(c.age_s) };
  }

  function nodeName(nodes, id) {
    var node = nodes.filter(function (n) { return n.id === id; })[0];
    return node && node.address ? node.address : (id || '').slice(0, 12);
  }

  function nodeRow(n) {
    return SC.el('tr', { testid: 'cluster-node', data: { node: n.id } }, [
      SC.el('td', { text: n.address || n.id.slice(0, 12), title: n.id }),
      SC.el('td', { class: 'num', text: SC.number(n.cpus) }),
      SC.el('td', { class: 'num', text: SC.number(n.capacity) }),
      SC.el('td', { class: 'num', text: SC.number(n.workers) }),
      SC.el('td', { class: 'num', text: SC.number(n.cameras) })
    ]);
  }

  function workerRow(nodes, w) {
    var backlog = SC.number(w.outbox_events) + ' (' + megabytes(w.outbox_bytes) + ')';
    if (w.outbox_age_s !== null && w.outbox_age_s !== undefined && w.outbox_events) {
      backlog += ', oldest ' + seconds(w.outbox_age_s);
    }
    var trouble = w.outbox_health === 'ok' ? null : 'outbox-' + w.outbox_health;
    var error = w.outbox_error || w.last_error || (w.state !== 'running' ? w.state : '');
    return SC.el('tr', { testid: 'cluster-worker', data: { worker: w.worker }, class: trouble }, [
      SC.el('td', { text: w.worker }),
      SC.el('td', { text: nodeName(nodes, w.node), title: w.node }),
      SC.el('td', { text: w.host || '' }),
      SC.el('td', { text: (w.cameras || []).join(', ') }),
      SC.el('td', { class: 'num', text: SC.number(w.rss_mb, 0) }),
      SC.el('td', { class: 'num', text: SC.number(w.cpu_percent, 0) }),
      SC.el('td', { class: 'num' + (trouble ? ' ' + trouble : ''), testid: 'worker-outbox',
        text: backlog }),
      SC.el('td', { class: 'error-text', testid: 'worker-error', text: error })
    ]);
  }

  function cameraRow(nodes, c) {
    return SC.el('tr', { testid: 'cluster-camera', data: { camera: c.camera } }, [
      SC.el('td', { text: c.camera }),
      SC.el('td', { text: nodeName(nodes, c.node), title: c.node }),
      SC.el('td', { text: c.worker || '' }),
      SC.el('td', { testid: 'cluster-camera-state' },
        SC.el('span', { class: 'badge state-' + c.state, text: c.state })),
      SC.el('td', { class: 'num', text: SC.number(c.analysed_fps, 1) }),
      SC.el('td', { class: 'num', text: SC.number(c.lag_p50_s, 2) }),
      SC.el('td', { class: 'num', text: SC.number(c.lag_p95_s, 2) }),
      SC.el('td', { class: 'num', text: SC.number(c.events) }),
      SC.el('td', { class: 'num', text: SC.number(c.dropped) }),
      SC.el('td', { class: 'error-text', text: c.last_error || '' })
    ]);
  }

  function coordinator(c) {
    var now = condition(c);
    var nodes = c.nodes || [];
    // Cameras by node, then by name: what runs where.
    var cameras = (c.cameras || []).slice().sort(function (a, b) {
      var ka = nodeName(nodes, a.node) + '\u0000' + a.camera;
      var kb = nodeName(nodes, b.node) + '\u0000' + b.camera;
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    });
    return SC.el('div', {
      class: 'pane cluster-coordinator', testid: 'cluster-coordinator',
      data: { coordinator: c.coordinator }
    }, [
      SC.el('p', { class: 'cluster-state ' + now.key, testid: 'cluster-state' }, [
        'coordinator ' + c.coordinator + ' (run ' + c.run_id.slice(0, 8) + ', Ray ' +
          (c.address || '—') + '): ',
        SC.el('span', { class: 'badge state-' + now.key, text: now.text }),
        ' · updated ', SC.time(c.updated_at)
      ]),
      SC.el('h3', { text: 'Nodes' }),
      table('cluster-nodes', ['Node', 'CPUs', 'Capacity', 'Workers', 'Cameras'],
        nodes.map(nodeRow)),
      SC.el('h3', { text: 'Workers' }),
      table('cluster-workers', ['Worker', 'Node', 'Host', 'Cameras', 'RSS (MB)', 'CPU (%)',
        'Outbox backlog', 'Last error'], (c.workers || []).map(function (w) {
        return workerRow(nodes, w);
      })),
      SC.el('h3', { text: 'Cameras' }),
      table('cluster-cameras', ['Camera', 'Node', 'Worker', 'State', 'Analysed fps',
        'Lag p50 (s)', 'Lag p95 (s)', 'Events', 'Dropped', 'Last error'],
      cameras.map(function (cam) { return cameraRow(nodes, cam); }))
    ]);
  }

  function showCluster(body) {
    var coordinators = (body && body.coordinators) || [];
    SC.clear(clusterList);
    coordinators.forEach(function (c) {
      clusterList.appendChild(coordinator(c));
    });
    clusterSection.hidden = coordinators.length === 0;
  }

  function pollCluster() {
    SC.api('/api/v1/cluster').then(showCluster).catch(SC.showError).then(function () {
      setTimeout(pollCluster, CLUSTER_MS);
    });
  }
  pollCluster();

  // --- the alert sinks (GET /api/v1/alerts; auditors and admins: others see no section) ---
  var ALERTS_MS = 5000;
  var alertsSection = document.getElementById('alerts');
  var alertsList = document.getElementById('alerts-list');

  function sinkRow(s) {
    return SC.el('tr', {
      testid: 'alerts-sink', data: { sink: s.sink }, class: s.pending > 0 ? 'pending' : null
    }, [
      SC.el('td', { text: s.sink }),
      SC.el('td', { text: s.kind }),
      SC.el('td', { class: 'num', testid: 'alerts-pending',
        text: s.started ? SC.number(s.pending) : 'not started' }),
      SC.el('td', { class: 'num', text: SC.number(s.sent) }),
      SC.el('td', { class: 'num', text: SC.number(s.failed) }),
      SC.el('td', {}, s.last_sent_at ? SC.time(s.last_sent_at) : '—'),
      SC.el('td', { class: 'error-text', text: s.last_error || '' })
    ]);
  }

  function pollAlerts() {
    SC.api('/api/v1/alerts', { signIn: false }).then(function (body) {
      var sinks = (body && body.sinks) || [];
      SC.clear(alertsList);
      sinks.forEach(function (s) { alertsList.appendChild(sinkRow(s)); });
      alertsSection.hidden = sinks.length === 0;
      setTimeout(pollAlerts, ALERTS_MS);
    }).catch(function (error) {
      if (error && error.status === 403) return;  // not this role's to see: no section
      SC.showError(error);
      setTimeout(pollAlerts, ALERTS_MS);
    });
  }
  pollAlerts();
})();
