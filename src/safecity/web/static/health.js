/* safecity console — camera health (/health).
 *
 * data-testid: health-table, health-list, health-row (data-camera=<name>; class "stale"
 * when the report is old), health-state, empty. Updated live from SSE `health`.
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
})();
