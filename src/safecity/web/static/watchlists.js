/* safecity console — watchlists (/watchlists).
 *
 * data-testid: watchlist-table, watchlist-list, watchlist-row (data-watchlist-id=<id>),
 * watchlist-link, watchlist-matching, empty, load-more; for roles that manage watchlists:
 * watchlist-form, watchlist-name, watchlist-authorisation, watchlist-submit.
 */
(function () {
  'use strict';
  var list = document.getElementById('watchlist-list');
  var form = document.getElementById('watchlist-form');

  function cameras(list) {
    return list === null || list === undefined ? 'all' : list.join(', ');
  }

  function row(w) {
    var a = w.authorisation || {};
    return SC.el('tr', { testid: 'watchlist-row', data: { watchlistId: w.id } }, [
      SC.el('td', {}, SC.el('a', {
        href: '/watchlists/' + encodeURIComponent(w.id), testid: 'watchlist-link', text: w.name
      })),
      SC.el('td', { class: 'num', text: SC.number(w.persons) }),
      SC.el('td', { text: a.legal_basis }),
      SC.el('td', { text: a.authority }),
      SC.el('td', { text: a.reference }),
      SC.el('td', { text: a.purpose }),
      SC.el('td', {}, SC.time(a.valid_from)),
      SC.el('td', {}, SC.time(a.valid_until)),
      SC.el('td', { text: cameras(a.cameras) }),
      SC.el('td', {}, SC.el('span', { class: 'badge status-' + a.status, text: a.status })),
      SC.el('td', {
        testid: 'watchlist-matching',
        class: w.matching_now ? 'yes' : 'no',
        text: w.matching_now ? 'yes' : 'no'
      })
    ]);
  }

  var pages = SC.pager(function (cursor) {
    return SC.api('/api/v1/watchlists', { params: { limit: 100, cursor: cursor } });
  }, function (items, more) {
    if (!more) SC.clear(list);
    items.forEach(function (w) {
      list.appendChild(row(w));
    });
  });

  function loadAuthorisations() {
    return SC.api('/api/v1/authorisations', { params: { limit: 500 } }).then(function (page) {
      var select = form.elements.authorisation_id;
      (page.items || []).forEach(function (a) {
        if (a.status === 'refused' || a.status === 'revoked') return; // cannot be used
        var label = a.reference + ' — ' + a.purpose + ' (' + a.status + ', ' + a.authority + ')';
        select.appendChild(SC.el('option', { value: a.id, text: label }));
      });
    });
  }

  if (form) {
    var submit = form.querySelector('[data-testid="watchlist-submit"]');
    form.addEventListener('submit', SC.guarded(submit, function () {
      var name = form.elements.name.value.trim();
      var authorisation = form.elements.authorisation_id.value;
      if (!name) throw new SC.ApiError(0, 'give the watchlist a name');
      if (!authorisation) throw new SC.ApiError(0, 'choose the authorisation the watchlist is kept under');
      return SC.api('/api/v1/watchlists', {
        method: 'POST',
        json: { name: name, authorisation_id: Number(authorisation) }
      }).then(function (w) {
        form.reset();
        SC.notice('watchlist ' + w.name + ' created');
        return pages.reload();
      });
    }));
    loadAuthorisations().catch(SC.showError);
  }

  pages.reload().catch(SC.showError);
})();
