/* safecity console — one watchlist and its persons (/watchlists/{id}).
 *
 * data-testid: watchlist-title, watchlist-facts, person-table, person-list, person-row
 * (data-person-id=<id>), person-photo, person-remove (asks for a reason), empty, load-more;
 * for roles that manage watchlists: enrol-form, enrol-name, enrol-photos, enrol-submit,
 * enrol-refused (list of refused photos), refused-photo (one: "file: reason").
 */
(function () {
  'use strict';
  var id = SC.me.itemId;
  var base = '/api/v1/watchlists/' + encodeURIComponent(id);
  var list = document.getElementById('person-list');
  var form = document.getElementById('enrol-form');
  var refusedList = document.getElementById('enrol-refused');
  var manage = Boolean(form);

  function showWatchlist(w) {
    var a = w.authorisation || {};
    document.getElementById('watchlist-title').textContent = w.name;
    document.title = w.name + ' · safecity';
    var dl = document.getElementById('watchlist-facts');
    SC.clear(dl);
    [
      ['persons', SC.number(w.persons)],
      ['created', SC.time(w.created_at)],
      ['matching now', w.matching_now ? 'yes' : 'no'],
      ['legal basis', a.legal_basis],
      ['authority', a.authority],
      ['reference', a.reference],
      ['purpose', a.purpose],
      ['valid from', SC.time(a.valid_from)],
      ['valid until', SC.time(a.valid_until)],
      ['cameras', a.cameras ? a.cameras.join(', ') : 'all'],
      ['authorisation', a.status]
    ].forEach(function (pair) {
      dl.appendChild(SC.el('dt', { text: pair[0] }));
      dl.appendChild(SC.el('dd', {}, pair[1] instanceof Node ? pair[1] : String(pair[1] || '—')));
    });
  }

  function remove(p, button) {
    return SC.guarded(button, function () {
      var reason = window.prompt('Why is ' + p.name + ' removed from this watchlist? (recorded in the audit trail)');
      if (reason === null) return null;
      reason = reason.trim();
      if (!reason) throw new SC.ApiError(0, 'a removal needs a reason');
      return SC.api(base + '/persons/' + encodeURIComponent(p.id), {
        method: 'DELETE', params: { reason: reason }
      }).then(function () {
        SC.notice(p.name + ' removed');
        return reload();
      });
    });
  }

  function row(p) {
    var photo = SC.el('span', { class: 'none', text: 'no photo' });
    if (p.photo) {
      var img = SC.el('img', {
        class: 'thumb face', testid: 'person-photo', loading: 'lazy',
        src: '/api/v1/persons/' + encodeURIComponent(p.id) + '/photo.jpg', alt: 'enrolled photo of ' + p.name
      });
      var none = photo;
      img.addEventListener('error', function () {
        img.replaceWith(none);
      });
      photo = img;
    }
    var cells = [
      SC.el('td', {}, photo),
      SC.el('td', { text: p.name }),
      SC.el('td', { class: 'num', text: SC.number(p.templates) }),
      SC.el('td', { text: p.enrolled_by }),
      SC.el('td', {}, SC.time(p.created_at))
    ];
    if (manage) {
      var button = SC.el('button', { type: 'button', class: 'danger', testid: 'person-remove', text: 'Remove' });
      button.addEventListener('click', remove(p, button));
      cells.push(SC.el('td', {}, button));
    }
    return SC.el('tr', { testid: 'person-row', data: { personId: p.id } }, cells);
  }

  var pages = SC.pager(function (cursor) {
    return SC.api(base + '/persons', { params: { limit: 100, cursor: cursor } });
  }, function (items, more) {
    if (!more) SC.clear(list);
    items.forEach(function (p) {
      list.appendChild(row(p));
    });
  });

  function reload() {
    return Promise.all([SC.api(base).then(showWatchlist), pages.reload()]);
  }

  function showRefused(err) {
    SC.clear(refusedList);
    var refused = (err && err.body && Array.isArray(err.body.refused)) ? err.body.refused : [];
    refused.forEach(function (r) {
      refusedList.appendChild(SC.el('li', { testid: 'refused-photo' }, [
        SC.el('strong', { text: String(r.photo) }), ': ' + String(r.reason)
      ]));
    });
    refusedList.hidden = refused.length === 0;
  }

  if (form) {
    var submit = document.getElementById('enrol-submit');
    form.addEventListener('submit', SC.guarded(submit, function () {
      showRefused(null);
      var name = form.elements.name.value.trim();
      var files = form.elements.photos.files;
      if (!name) throw new SC.ApiError(0, 'enter the person\'s name');
      if (!files || !files.length) throw new SC.ApiError(0, 'choose at least one photo (JPEG or PNG)');
      var data = new FormData();
      data.append('name', name);
      for (var i = 0; i < files.length; i++) data.append('photos', files[i], files[i].name);
      return SC.api(base + '/persons', { method: 'POST', form: data }).then(function (out) {
        form.reset();
        SC.notice(out.person + ' enrolled (' + out.templates + ' template' + (out.templates === 1 ? '' : 's') + ')');
        return reload();
      }, function (err) {
        showRefused(err);
        throw err;
      });
    }));
  }

  reload().catch(SC.showError);
})();
