/* safecity console — review queue (/review).
 *
 * data-testid: review-queue, review-card (data-event-id=<id>), review-enrolled (the enrolled
 * photo), review-probe (the face the camera saw), review-person, review-watchlist,
 * review-score, review-confirmations, review-note, review-confirm, review-reject,
 * review-why-not (why this user may not review it), empty, load-more.
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
    return SC.el('article', { class: 'review-card', testid: 'review-card', data: { eventId: c.event_id } }, [
      SC.el('div', { class: 'faces' }, [
        SC.el('figure', {}, [
          c.person_id === null || c.person_id === undefined
            ? SC.el('div', { class: 'placeholder', testid: 'review-enrolled', text: 'no enrolled photo' })
            : fallback(SC.el('img', {
              testid: 'review-enrolled', alt: 'enrolled photo of ' + c.person,
              src: '/api/v1/persons/' + encodeURIComponent(c.person_id) + '/photo.jpg'
            }), 'no enrolled photo'),
          SC.el('figcaption', { text: 'enrolled' })
        ]),
        SC.el('figure', {}, [
          fallback(SC.el('img', {
            testid: 'review-probe', alt: 'face seen on ' + c.camera,
            src: '/api/v1/events/' + encodeURIComponent(c.event_id) + '/match.jpg'
          }), 'the match snapshot is gone'),
          SC.el('figcaption', { text: 'seen on ' + c.camera })
        ])
      ]),
      SC.el('dl', { class: 'facts' }, [].concat(
        fact('person', c.person || '—', 'review-person'),
        fact('watchlist', c.watchlist || '—', 'review-watchlist'),
        fact('score', SC.number(c.score, 3), 'review-score'),
        fact('seen', SC.el('a', { href: '/events/' + encodeURIComponent(c.event_id) }, SC.time(c.started_at))),
        fact('confirmations', c.confirmations + ' of ' + c.required, 'review-confirmations')
      )),
      actions
    ]);
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
