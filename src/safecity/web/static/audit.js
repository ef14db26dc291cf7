/* safecity console — audit trail (/audit).
 *
 * data-testid: audit-verify, audit-verify-result (class "ok" or "broken"), audit-filters,
 * filter-action, filter-actor, filter-since, filter-until, filter-apply, filter-reset,
 * audit-table, audit-list, audit-row (data-record-id=<id>), empty, load-more.
 */
(function () {
  'use strict';
  var form = document.getElementById('audit-filters');
  var list = document.getElementById('audit-list');
  var verify = document.getElementById('audit-verify');
  var result = document.getElementById('audit-verify-result');
  var filters = {};

  function details(value) {
    if (value === null || value === undefined || value === '') return '';
    if (typeof value !== 'object') return String(value);
    return Object.keys(value).map(function (key) {
      var v = value[key];
      return key + '=' + (v !== null && typeof v === 'object' ? JSON.stringify(v) : String(v));
    }).join(', ');
  }

  function row(r) {
    var hash = String(r.hash || '');
    return SC.el('tr', { testid: 'audit-row', data: { recordId: r.id } }, [
      SC.el('td', { class: 'num', text: r.id }),
      SC.el('td', {}, SC.time(r.at)),
      SC.el('td', { text: r.actor }),
      SC.el('td', { text: r.action }),
      SC.el('td', { text: r.object }),
      SC.el('td', { text: r.purpose || '' }),
      SC.el('td', { class: 'details', text: details(r.details) }),
      SC.el('td', { class: 'origin', text: r.origin || '' }),
      SC.el('td', { class: 'hash', title: hash, text: hash.slice(0, 12) })
    ]);
  }

  var pages = SC.pager(function (cursor) {
    var params = Object.assign({ limit: 100, cursor: cursor }, filters);
    return SC.api('/api/v1/audit', { params: params });
  }, function (items, more) {
    if (!more) SC.clear(list);
    items.forEach(function (r) {
      list.appendChild(row(r));
    });
  });

  function apply() {
    filters = {
      action: form.elements.action.value.trim(),
      actor: form.elements.actor.value.trim(),
      since: SC.toUtc(form.elements.since.value),
      until: SC.toUtc(form.elements.until.value)
    };
    return pages.reload();
  }

  form.addEventListener('submit', function (e) {
    e.preventDefault();
    SC.clearError();
    apply().catch(SC.showError);
  });
  form.addEventListener('reset', function () {
    SC.clearError();
    setTimeout(function () {
      apply().catch(SC.showError);
    }, 0);
  });

  verify.addEventListener('click', SC.guarded(verify, function () {
    result.hidden = true;
    return SC.api('/api/v1/audit/verify', { method: 'POST' }).then(function (report) {
      var text = report.message;
      if (!text) {
        text = report.intact
          ? 'the audit trail is intact (' + report.records + ' records checked)'
          : 'the audit trail is broken';
      }
      if (!report.intact && report.first_broken_id !== null && report.first_broken_id !== undefined) {
        text += ' — first broken record #' + report.first_broken_id +
          (report.problem ? ': ' + report.problem : '');
      }
      result.textContent = text;
      result.className = 'verify-result ' + (report.intact ? 'ok' : 'broken');
      result.hidden = false;
    });
  }));

  apply().catch(SC.showError);
})();
