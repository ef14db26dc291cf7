/* safecity console — users (/users, admins only).
 *
 * data-testid: user-table, user-list, user-row (data-username=<name>), user-disable,
 * user-enable, load-more; the create form: user-form, user-username, user-display-name,
 * user-password, user-role-select, user-cameras, user-all-cameras, user-submit.
 */
(function () {
  'use strict';
  var list = document.getElementById('user-list');
  var form = document.getElementById('user-form');

  function setDisabled(u, disabled, button) {
    return SC.guarded(button, function () {
      var verb = disabled ? 'Disable' : 'Enable';
      if (!window.confirm(verb + ' the account of ' + u.username + '?')) return null;
      return SC.api('/api/v1/users/' + encodeURIComponent(u.username), {
        method: 'PATCH', json: { disabled: disabled }
      }).then(function () {
        SC.notice(u.username + (disabled ? ' disabled' : ' enabled'));
        return pages.reload();
      });
    });
  }

  function row(u) {
    var button = u.disabled
      ? SC.el('button', { type: 'button', testid: 'user-enable', text: 'Enable' })
      : SC.el('button', { type: 'button', class: 'danger', testid: 'user-disable', text: 'Disable' });
    button.addEventListener('click', setDisabled(u, !u.disabled, button));
    if (u.username === SC.me.username) button.disabled = true; // not yourself
    return SC.el('tr', { testid: 'user-row', data: { username: u.username }, class: u.disabled ? 'disabled' : null }, [
      SC.el('td', { text: u.username }),
      SC.el('td', { text: u.display_name || '' }),
      SC.el('td', {}, SC.el('span', { class: 'role role-' + u.role, text: u.role })),
      SC.el('td', { text: u.cameras === null ? 'all' : u.cameras.join(', ') || 'none' }),
      SC.el('td', { text: u.disabled ? 'disabled' : 'active' }),
      SC.el('td', {}, SC.time(u.created_at)),
      SC.el('td', { text: u.created_by }),
      SC.el('td', {}, button)
    ]);
  }

  var pages = SC.pager(function (cursor) {
    return SC.api('/api/v1/users', { params: { limit: 100, cursor: cursor } });
  }, function (items, more) {
    if (!more) SC.clear(list);
    items.forEach(function (u) {
      list.appendChild(row(u));
    });
  });

  var submit = form.querySelector('[data-testid="user-submit"]');
  form.addEventListener('submit', SC.guarded(submit, function () {
    var all = form.elements.all_cameras.checked;
    var cameras = form.elements.cameras.value.split(',').map(function (c) {
      return c.trim();
    }).filter(Boolean);
    if (!all && !cameras.length) {
      throw new SC.ApiError(0, 'name the cameras the user may see, or tick "every camera"');
    }
    return SC.api('/api/v1/users', {
      method: 'POST',
      json: {
        username: form.elements.username.value.trim(),
        display_name: form.elements.display_name.value.trim(),
        password: form.elements.password.value,
        role: form.elements.role.value,
        cameras: all ? null : cameras
      }
    }).then(function (u) {
      form.reset();
      SC.notice('user ' + u.username + ' created (' + u.role + ')');
      return pages.reload();
    });
  }));

  pages.reload().catch(SC.showError);
})();
