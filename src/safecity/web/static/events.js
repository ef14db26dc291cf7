/* safecity console — event timeline (/events).
 *
 * data-testid: event-filters, filter-camera, filter-label, filter-since, filter-until,
 * filter-person, filter-status, filter-plate and filter-fuzzy (not for viewers: identities),
 * filter-apply, filter-reset, event-table, event-list, event-row (data-event-id=<id>),
 * event-link, event-thumb, event-plate (the plate column, only for roles that see
 * identities), event-match, empty, load-more.
 *
 * The filters live in the page's query string (?camera=&label=&since=&until=&person=&status=
 * &plate=&fuzzy=, times ISO UTC), so a filtered view can be bookmarked. New events arrive from SSE `event`
 * and are put on top when they match the filters.
 */
(function () {
  'use strict';
  var form = document.getElementById('event-filters');
  var list = document.getElementById('event-list');
  var FIELDS = ['camera', 'label', 'since', 'until', 'person', 'status', 'plate', 'fuzzy'];
  // The plate column is there for roles that see identities (the page leaves it out otherwise).
  var platesShown = !!form.elements.plate;
  var filters = {};

  function readForm() {
    var f = {};
    FIELDS.forEach(function (name) {
      var input = form.elements[name];
      if (!input) return;
      if (input.type === 'checkbox') {
        f[name] = input.checked ? 'true' : '';
        return;
      }
      var value = input.value.trim();
      f[name] = name === 'since' || name === 'until' ? SC.toUtc(value) : value;
    });
    return f;
  }

  function fillForm(f) {
    FIELDS.forEach(function (name) {
      var input = form.elements[name];
      if (!input) return;
      var value = f[name] || '';
      if (input.type === 'checkbox') {
        input.checked = value === 'true';
        return;
      }
      input.value = name === 'since' || name === 'until' ? SC.toLocalInput(value) : value;
    });
  }

  function fromUrl() {
    var params = new URLSearchParams(location.search);
    var f = {};
    FIELDS.forEach(function (name) {
      f[name] = params.get(name) || '';
    });
    return f;
  }

  function matches(e) {
    var f = filters;
    var started = new Date(e.started_at).getTime();
    if (f.camera && e.camera !== f.camera) return false;
    if (f.label && String(e.label).toLowerCase() !== f.label.toLowerCase()) return false;
    if (f.since && started < new Date(f.since).getTime()) return false;
    if (f.until && started > new Date(f.until).getTime()) return false;
    if (f.person) {
      // The API takes a person's name or id.
      var m = e.match;
      var wanted = f.person.toLowerCase();
      if (!m || (String(m.person).toLowerCase() !== wanted && String(m.person_id) !== wanted)) {
        return false;
      }
    }
    if (f.status && !(e.match && e.match.status === f.status)) return false;
    if (f.plate) {
      // Live events are put on top when their plate is the one searched; those one
      // character off (fuzzy) show on the next load, where the server decides.
      var plate = f.plate.toUpperCase().replace(/[^A-Z0-9]/g, '');
      if (!e.plate || e.plate.text !== plate) return false;
    }
    return true;
  }

  function matchCell(m) {
    if (!m) return SC.el('td', { class: 'none', text: '—' });
    return SC.el('td', { testid: 'event-match' }, [
      SC.el('span', { class: 'person', text: m.person || '(removed)' }),
      m.watchlist ? ' · ' + m.watchlist : null,
      ' ',
      SC.el('span', { class: 'badge status-' + m.status, text: m.status }),
      m.status === 'candidate' ? ' ' + m.confirmations + '/' + m.required : null
    ]);
  }

  function row(e) {
    var href = '/events/' + encodeURIComponent(e.id);
    var thumb = e.snapshot
      ? SC.el('a', { href: href, testid: 'event-link' }, SC.el('img', {
        class: 'thumb', testid: 'event-thumb', loading: 'lazy',
        src: '/api/v1/events/' + encodeURIComponent(e.id) + '/snapshot.jpg',
        alt: 'snapshot of event ' + e.id
      }))
      : SC.el('a', { href: href, testid: 'event-link', class: 'no-thumb', text: 'no snapshot' });
    return SC.el('tr', { testid: 'event-row', data: { eventId: e.id } }, [
      SC.el('td', {}, thumb),
      SC.el('td', {}, [SC.el('a', { href: href }, SC.time(e.started_at))]),
      SC.el('td', { text: e.camera }),
      SC.el('td', { text: e.face_only ? e.label + ' (face only)' : e.label }),
      platesShown ? SC.el('td', { testid: 'event-plate', class: 'plate', text: e.plate ? e.plate.text : '' }) : null,
      SC.el('td', { class: 'num', text: SC.number(e.track_id) }),
      SC.el('td', { class: 'num', text: SC.number(e.best_score, 2) }),
      matchCell(e.match)
    ]);
  }

  var pages = SC.pager(function (cursor) {
    var params = Object.assign({ limit: 50, cursor: cursor }, filters);
    return SC.api('/api/v1/events', { params: params });
  }, function (items, more) {
    if (!more) SC.clear(list);
    items.forEach(function (e) {
      list.appendChild(row(e));
    });
  });

  function apply(f) {
    filters = f;
    var url = location.pathname + SC.query(filters);
    history.replaceState(null, '', url);
    return pages.reload();
  }

  function loadCameras() {
    return SC.api('/api/v1/cameras', { params: { limit: 500 } }).then(function (page) {
      var select = form.elements.camera;
      (page.items || []).forEach(function (camera) {
        select.appendChild(SC.el('option', { value: camera.name, text: camera.name }));
      });
    });
  }

  form.addEventListener('submit', function (e) {
    e.preventDefault();
    SC.clearError();
    apply(readForm()).catch(SC.showError);
  });
  form.addEventListener('reset', function () {
    SC.clearError();
    setTimeout(function () {
      apply(readForm()).catch(SC.showError);
    }, 0);
  });

  SC.live('event', function (e) {
    var existing = list.querySelector('tr[data-event-id="' + String(Number(e.id)) + '"]');
    if (existing) {
      existing.replaceWith(row(e));
    } else if (matches(e)) {
      list.insertBefore(row(e), list.firstChild);
      pages.added(1);
    }
  });

  // The form is filled from the address at once, not after the cameras arrive: filled
  // later, it wiped whatever the operator had typed in the meantime (on a busy server a
  // plate typed and applied at once came back as the whole list).
  filters = fromUrl();
  fillForm(filters);
  apply(filters).catch(SC.showError);
  loadCameras()
    .then(function () {
      // The camera of the address can be selected only now; unless the operator chose one.
      var select = form.elements.camera;
      if (select && !select.value && filters.camera) select.value = filters.camera;
    })
    .catch(SC.showError);
})();
