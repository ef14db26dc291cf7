/* safecity console — one event (/events/{id}).
 *
 * data-testid: event-detail, event-facts, event-plate-text, event-snapshot, event-plate
 * (the plate's crop; plates only for roles that see identities), event-match, match-facts,
 * match-snapshot, review-list, review-item, back.
 */
(function () {
  'use strict';
  var id = SC.me.itemId;
  var base = '/api/v1/events/' + encodeURIComponent(id);

  function facts(dl, pairs) {
    SC.clear(dl);
    pairs.forEach(function (pair) {
      if (pair[1] === undefined) return;
      dl.appendChild(SC.el('dt', { text: pair[0] }));
      var value = pair[1];
      dl.appendChild(SC.el('dd', { testid: pair[2] }, value instanceof Node ? value : String(value)));
    });
  }

  function unavailable(id) {
    var img = document.getElementById(id);
    img.addEventListener('error', function () {
      img.replaceWith(SC.el('p', { class: 'none', testid: img.dataset.testid, text: 'the image is no longer available' }));
    });
  }
  unavailable('event-snapshot');
  unavailable('match-snapshot');
  unavailable('event-plate');

  function show(e) {
    facts(document.getElementById('event-facts'), [
      ['started', SC.time(e.started_at)],
      ['ended', SC.time(e.ended_at)],
      ['camera', e.camera],
      ['label', e.face_only ? e.label + ' (seen by the face only)' : e.label],
      ['plate', e.plate ? e.plate.text + ' (' + SC.number(e.plate.confidence, 2) + ')' : undefined,
        'event-plate-text'],
      ['track', SC.number(e.track_id)],
      ['frames', SC.number(e.frames)],
      ['best score', SC.number(e.best_score, 3)]
    ]);
    if (e.snapshot) {
      document.getElementById('event-snapshot').src = base + '/snapshot.jpg';
      document.getElementById('event-snapshot-box').hidden = false;
    }
    if (e.plate && e.plate.crop) {
      document.getElementById('event-plate').src = base + '/plate.jpg';
      document.getElementById('event-plate-box').hidden = false;
    }
    var m = e.match;
    if (m) {
      facts(document.getElementById('match-facts'), [
        ['person', m.person || '(removed from the watchlist)', 'match-person'],
        ['watchlist', m.watchlist_id === null || m.watchlist_id === undefined ? '—'
          : SC.el('a', { href: '/watchlists/' + encodeURIComponent(m.watchlist_id), text: m.watchlist })],
        ['score', SC.number(m.score, 3), 'match-score'],
        ['status', SC.el('span', { class: 'badge status-' + m.status, text: m.status }), 'match-status'],
        ['confirmations', m.confirmations + ' of ' + m.required + ' required', 'match-confirmations'],
        ['authorisation', e.authorisation_id === null || e.authorisation_id === undefined
          ? undefined : String(e.authorisation_id)]
      ]);
      if (e.match_snapshot) {
        document.getElementById('match-snapshot').src = base + '/match.jpg';
        document.getElementById('match-snapshot-box').hidden = false;
      }
      var reviews = document.getElementById('review-list');
      SC.clear(reviews);
      (e.reviews || []).forEach(function (r) {
        reviews.appendChild(SC.el('li', { testid: 'review-item' }, [
          SC.el('span', { class: 'badge decision-' + r.decision, text: r.decision }),
          ' by ' + r.reviewer + ', ', SC.time(r.at)
        ]));
      });
      if (!(e.reviews || []).length) reviews.appendChild(SC.el('li', { class: 'none', text: 'not reviewed yet' }));
      document.getElementById('event-match').hidden = false;
    }
    document.getElementById('event-detail').hidden = false;
  }

  SC.api(base).then(show).catch(SC.showError);
})();
