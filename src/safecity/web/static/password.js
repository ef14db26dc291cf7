/* safecity console — set your own password (/password).
 *
 * data-testid: password-form, password-current, password-new, password-again,
 * password-submit, password-rules, password-provisional (shown when an admin set the
 * password), error.
 * The form's data-next is the page to go to after signing in again (a local path);
 * data-min-length the shortest password the server takes.
 * POST /api/v1/auth/password ends every session of the account, this one included:
 * on success the browser goes to /login?changed=1, which says so.
 */
(function () {
  'use strict';
  var form = document.getElementById('password-form');
  var submit = document.getElementById('password-submit');

  form.addEventListener('submit', SC.guarded(submit, function () {
    var current = form.elements.current_password.value;
    var fresh = form.elements.new_password.value;
    var again = form.elements.new_password_again.value;
    var shortest = parseInt(form.dataset.minLength, 10) || 0;
    if (!current || !fresh || !again) {
      SC.showError('enter your current password and the new one twice');
      return null;
    }
    if (fresh !== again) {
      SC.showError('the two new passwords differ');
      form.elements.new_password_again.value = '';
      form.elements.new_password_again.focus();
      return null;
    }
    if (fresh.length < shortest) {
      // The server's own sentence (safecity.access.users.check_password).
      SC.showError('the password must have at least ' + shortest + ' characters');
      return null;
    }
    return SC.api('/api/v1/auth/password', {
      method: 'POST',
      json: { current_password: current, new_password: fresh }
    }).then(function () {
      // Every session of this account has ended: sign in again with the new password.
      location.assign('/login?changed=1&next=' + encodeURIComponent(SC.safeNext(form.dataset.next)));
    }, function (err) {
      form.elements.current_password.value = '';
      form.elements.new_password.value = '';
      form.elements.new_password_again.value = '';
      form.elements.current_password.focus();
      throw err;
    });
  }));
})();
