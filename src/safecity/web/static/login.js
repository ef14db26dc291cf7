/* safecity console — sign-in page (/login).
 *
 * data-testid: login-form, login-username (id username), login-password (id password),
 * login-submit, error; password-changed (after /password, which ends every session).
 * The form's data-next is where to go after signing in (a local path, checked by the
 * server and again here); a user whose password an admin set goes to /password first.
 */
(function () {
  'use strict';
  var form = document.getElementById('login-form');
  var submit = document.getElementById('login-submit');

  form.addEventListener('submit', SC.guarded(submit, function () {
    var username = form.elements.username.value.trim();
    var password = form.elements.password.value;
    if (!username || !password) {
      SC.showError('enter your user name and password');
      return null;
    }
    return SC.api('/api/v1/auth/login', {
      method: 'POST',
      json: { username: username, password: password },
      signIn: false
    }).then(function (me) {
      var next = SC.safeNext(form.dataset.next);
      // A password someone else set comes first: the user sets their own.
      if (me && me.password_provisional) next = '/password?next=' + encodeURIComponent(next);
      location.assign(next);
    }, function (err) {
      form.elements.password.value = '';
      form.elements.password.focus();
      throw err;
    });
  }));
})();
