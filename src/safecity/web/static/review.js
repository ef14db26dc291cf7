/* safecity console — review queue (/review).
 *
 * data-testid: review-queue, review-card (data-event-id=<id>, data-kind=face|plate),
 * review-watchlist, review-authorisation (the authorisation the match was made under),
 * review-score, review-confirmations, review-note, review-confirm, review-reject,
 * review-why-not (why this user may not review it), empty, load-more.
 * A face hit: review-enrolled (the enrolled photo), review-probe (the face the camera saw),
 * review-person. A licence plate hit: review-plate-crop (the plate as read) beside
 * review-listed-plate (each plate listed), review-plate-read (the read's text),
 * review-plate-confidence, review-vehicle (the listed vehicle's description),
 * review-vehicle-snapshot (the vehicle as the camera saw it).
 * The queue reloads on SSE `review` (the number of candidates changed).
 */
(function () {
  'use strict';
  var queue = document.getElementById('review-queue');

  /** `img`, replaced by a placeholder saying `why` if it cannot be loaded. */
  function fallback(img, why) {
    img.addEventListener('error', function () {
      img.replaceWith(SC.el('div', { class: 'placeholder', testid: img.dataset.testid, text: why }));
    });
    return img;
  }

  function fact(label, value, testid) {
    return [SC.el('dt', { text: label }), SC.el('dd', { testid: testid }, value)];
  }

  function decide(c, decision, note, buttons) {
    return function () {
      buttons.forEach(function (b) { b.disabled = true; });
      SC.clearError();
      SC.api('/api/v1/review/' + encodeURIComponent(c.event_id), {
        method: 'POST',
        json: { decision: decision, note: note.value.trim() }
      }).then(function (out) {
        SC.notice(out.message || ('event ' + out.event_id + ': ' + decision + 'ed; now ' +
          out.status + ' (' + out.confirmations + ' of ' + out.required + ' confirmations)'));
        return reload();
      }).catch(function (err) {
        buttons.forEach(function (b) { b.disabled = false; });
        SC.showError(err);
      });
    };
  }

  function card(c) {
    var note = SC.el('input', {
      type: 'text', class: 'note', testid: 'review-note', maxlength: 1000,
      placeholder: 'note (optional)', 'aria-label': 'note on event ' + c.event_id
    });
    var confirm = SC.el('button', { type: 'button', class: 'confirm', testid: 'review-confirm', text: 'Confirm' });
    var reject = SC.el('button', { type: 'button', class: 'danger', testid: 'review-reject', text: 'Reject' });
    var buttons = [confirm, reject];
    var actions = SC.el('div', { class: 'actions' }, [note, confirm, reject]);
    if (c.may_review) {
      confirm.addEventListener('click', decide(c, 'confirm', note, buttons));
      reject.addEventListener('click', decide(c, 'reject', note, buttons));
    } else {
      confirm.disabled = true;
      reject.disabled = true;
      note.disabled = true;
      actions.appendChild(SC.el('p', {
        class: 'why-not', testid: 'review-why-not', text: c.why_not || 'you may not review this match'
      }));
    }
    var evidence = c.kind === 'plate' && c.plate ? plateEvidence(c) : faceEvidence(c);
    return SC.el('article', {
      class: 'review-card', testid: 'review-card', data: { eventId: c.event_id, kind: c.kind }
    }, [
      evidence.images,
      SC.el('dl', { class: 'facts' }, [].concat(
        evidence.facts,
        fact('watchlist', c.watchlist || '—', 'review-watchlist'),
        fact('authorisation', authorisation(c.authorisation), 'review-authorisation'),
        fact('seen', SC.el('a', { href: '/events/' + encodeURIComponent(c.event_id) }, SC.time(c.started_at))),
        fact('confirmations', c.confirmations + ' of ' + c.required, 'review-confirmations')
      )),
      actions
    ]);
  }

  /** The enrolled photo beside the face the camera saw. */
  function faceEvidence(c) {
    var face = c.face || {};
    return {
      images: SC.el('div', { class: 'faces' }, [
        SC.el('figure', {}, [
          face.enrolled_photo_url
            ? fallback(SC.el('img', {
              testid: 'review-enrolled', alt: 'enrolled photo of ' + c.person, src: face.enrolled_photo_url
            }), 'no enrolled photo')
            : SC.el('div', { class: 'placeholder', testid: 'review-enrolled', text: 'no enrolled photo' }),
          SC.el('figcaption', { text: 'enrolled' })
        ]),
        SC.el('figure', {}, [
          face.seen_url
            ? fallback(SC.el('img', { testid: 'review-probe', alt: 'face seen on ' + c.camera, src: face.seen_url }),
              'the match snapshot is gone')
            : SC.el('div', { class: 'placeholder', testid: 'review-probe', text: 'the match snapshot is gone' }),
          SC.el('figcaption', { text: 'seen on ' + c.camera })
        ])
      ]),
      facts: [].concat(
        fact('person', c.person || '—', 'review-person'),
        fact('score', SC.number(c.score, 3), 'review-score')
      )
    };
  }

  /** The plate as read (its crop) beside the plate(s) listed, then the vehicle seen. */
  function plateEvidence(c) {
    var plate = c.plate;
    var crop = plate.crop_url
      ? fallback(SC.el('img', {
        class: 'plate-crop', testid: 'review-plate-crop', alt: 'plate read on ' + c.camera, src: plate.crop_url
      }), 'the plate image is gone')
      : SC.el('div', { class: 'placeholder', testid: 'review-plate-crop', text: 'no plate image stored' });
    return {
      images: SC.el('div', { class: 'plate-evidence' }, [
        SC.el('div', { class: 'plates' }, [
          SC.el('figure', {}, [
            crop,
            SC.el('figcaption', {}, ['read on ' + c.camera + ' as ',
              SC.el('span', { class: 'plate-text', testid: 'review-plate-read', text: plate.read })])
          ]),
          SC.el('figure', {}, [
            SC.el('div', { class: 'listed-plates' }, plate.listed.map(function (text) {
              return SC.el('span', { class: 'listed-plate', testid: 'review-listed-plate', text: text });
            })),
            SC.el('figcaption', { text: 'listed' })
          ])
        ]),
        SC.el('figure', { class: 'vehicle' }, [
          fallback(SC.el('img', {
            testid: 'review-vehicle-snapshot', alt: 'vehicle seen on ' + c.camera, src: plate.snapshot_url
          }), 'the vehicle snapshot is gone'),
          SC.el('figcaption', { text: 'the vehicle, seen on ' + c.camera })
        ])
      ]),
      facts: [].concat(
        fact('vehicle', plate.vehicle || '—', 'review-vehicle'),
        fact('read confidence', SC.number(plate.confidence, 2), 'review-plate-confidence')
      )
    };
  }

  /** "DC-4411 · Police Act s.12 · District Court · active until …", or '—'. */
  function authorisation(a) {
    if (!a) return '—';
    var what = [a.reference || 'emergency use', a.legal_basis, a.authority].filter(Boolean).join(' · ');
    return [what + ' · ', SC.el('span', { class: 'status-' + a.status, text: a.status }),
      ' until ', SC.time(a.valid_until)];
  }

  var pages = SC.pager(function (cursor) {
    return SC.api('/api/v1/review/queue', { params: { limit: 50, cursor: cursor } });
  }, function (items, more) {
    // Keep what was typed in the notes (and the focus) across a reload of the queue.
    var notes = {};
    var focused = document.activeElement;
    var focusedId = focused && focused.classList.contains('note')
      ? focused.closest('[data-event-id]').dataset.eventId : null;
    queue.querySelectorAll('[data-testid="review-card"]').forEach(function (node) {
      notes[node.dataset.eventId] = node.querySelector('.note').value;
    });
    if (!more) SC.clear(queue);
    items.forEach(function (c) {
      var node = card(c);
      var note = node.querySelector('.note');
      var id = String(c.event_id);
      if (notes[id] && !note.disabled) note.value = notes[id];
      queue.appendChild(node);
      if (id === focusedId && !note.disabled) note.focus();
    });
  });

  function reload() {
    return pages.reload();
  }

  var pending = null;
  SC.live('review', function () {
    clearTimeout(pending); // coalesce bursts
    pending = setTimeout(function () {
      reload().catch(SC.showError);
    }, 300);
  });

  reload().catch(SC.showError);
})();
