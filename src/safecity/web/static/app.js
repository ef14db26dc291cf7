/* safecity console — shared helpers, exposed as window.SC.
 *
 * Elements of every page shell (templates/base.html):
 *   #nav                      the pages the role may use; links data-testid="nav-<page>"
 *                             (nav-cameras, nav-events, nav-watchlists, nav-review, nav-audit,
 *                             nav-health, nav-users)
 *   data-testid="user-name"   the signed-in user;  data-testid="user-role"  their role
 *   data-testid="logout"      sign out (POST /api/v1/auth/logout)
 *   data-testid="change-password"  the link to /password (set your own password)
 *   data-testid="error"       the visible error area: the API's `detail` sentence
 *   data-testid="notice"      a short confirmation of what was just done
 *   data-testid="live-status" shown while live updates (SSE) are interrupted
 *   data-testid="empty"       "nothing here" line of a page's list
 *   data-testid="load-more"   next page of a list (follows next_cursor)
 *
 * <body> carries data-username, data-role, data-permissions (space-separated, e.g. "see_faces
 * review") and, on detail pages, data-item-id. Text is always inserted with textContent.
 */
(function () {
  'use strict';

  var CSRF_COOKIE = 'safecity_csrf';
  var CSRF_HEADER = 'X-CSRF-Token';

  function cookie(name) {
    var parts = document.cookie ? document.cookie.split('; ') : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf('=');
      if (parts[i].slice(0, eq) === name) return decodeURIComponent(parts[i].slice(eq + 1));
    }
    return '';
  }

  /** An API refusal or failure; `message` is the sentence to show. */
  function ApiError(status, message, body) {
    this.name = 'ApiError';
    this.status = status;
    this.message = message;
    this.body = body || null;
  }
  ApiError.prototype = Object.create(Error.prototype);
  ApiError.prototype.constructor = ApiError;

  /** The one sentence to show for an error body (never the raw JSON). */
  function describe(status, body) {
    var detail = body && body.detail;
    if (typeof detail === 'string' && detail) return detail;
    if (Array.isArray(detail) && detail.length && detail[0] && detail[0].msg) {
      // FastAPI's validation errors: name the field and the problem.
      var loc = (detail[0].loc || []).filter(function (p) {
        return p !== 'body' && p !== 'query' && p !== 'path';
      });
      return (loc.length ? loc.join('.') + ': ' : '') + String(detail[0].msg);
    }
    if (status === 413) return 'the upload is too large';
    if (status >= 500) return 'the server failed to answer (' + status + '); try again shortly';
    return 'the request was refused (' + status + ')';
  }

  /** Query string of the non-empty values of `params`. */
  function query(params) {
    var search = new URLSearchParams();
    Object.keys(params || {}).forEach(function (key) {
      var value = params[key];
      if (value !== undefined && value !== null && value !== '') search.set(key, String(value));
    });
    var text = search.toString();
    return text ? '?' + text : '';
  }

  /**
   * fetch() an API path. Options: method, json (a body sent as JSON), form (a FormData),
   * params (query), signIn (false: do not send the user to /login on a 401).
   * Resolves to the parsed JSON (null for 204); rejects with an ApiError.
   */
  function api(path, options) {
    var opts = options || {};
    var method = (opts.method || 'GET').toUpperCase();
    var headers = { Accept: 'application/json' };
    var body;
    if (method !== 'GET' && method !== 'HEAD') headers[CSRF_HEADER] = cookie(CSRF_COOKIE);
    if (opts.json !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(opts.json);
    } else if (opts.form !== undefined) {
      body = opts.form; // the browser sets the multipart boundary
    }
    var url = path + query(opts.params);
    return fetch(url, { method: method, headers: headers, body: body, credentials: 'same-origin' })
      .catch(function () {
        throw new ApiError(0, 'the server cannot be reached; check the connection and try again');
      })
      .then(function (response) {
        if (response.status === 204) return null;
        return response.text().then(function (text) {
          var data = null;
          try {
            data = text ? JSON.parse(text) : null;
          } catch (e) {
            data = null;
          }
          if (response.ok) return data;
          if (response.status === 401 && opts.signIn !== false) toLogin();
          throw new ApiError(response.status, describe(response.status, data), data);
        });
      });
  }

  function toLogin() {
    var here = location.pathname + location.search;
    location.assign('/login?next=' + encodeURIComponent(here));
  }

  function byId(id) {
    return document.getElementById(id);
  }

  /** Show an error (an ApiError, an Error or a sentence) in the page's error area. */
  function showError(err) {
    var box = byId('error');
    var text;
    if (typeof err === 'string') text = err;
    else if (err instanceof ApiError) text = err.message;
    else {
      if (window.console) console.error(err);
      text = 'something went wrong in this page; reload it';
    }
    if (!box) return;
    box.textContent = text;
    box.hidden = false;
    hideNotice();
  }

  function clearError() {
    var box = byId('error');
    if (box) {
      box.textContent = '';
      box.hidden = true;
    }
  }

  var noticeTimer = null;
  function notice(text) {
    var box = byId('notice');
    if (!box) return;
    box.textContent = text;
    box.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(hideNotice, 8000);
  }

  function hideNotice() {
    var box = byId('notice');
    if (box) box.hidden = true;
  }

  /**
   * Make an element: el('td', {text: 'x', class: 'num', testid: 'empty', title: '…'}, child…).
   * `text` sets textContent; `testid` sets data-testid; `data` sets data-* attributes;
   * other keys become attributes (hidden/disabled/checked as properties). Children may be
   * nodes or strings (inserted as text).
   */
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    var a = attrs || {};
    Object.keys(a).forEach(function (key) {
      var value = a[key];
      if (value === undefined || value === null || value === false) return;
      if (key === 'text') node.textContent = String(value);
      else if (key === 'class') node.className = value;
      else if (key === 'testid') node.setAttribute('data-testid', value);
      else if (key === 'data') {
        Object.keys(value).forEach(function (d) {
          node.dataset[d] = String(value[d]);
        });
      } else if (key === 'hidden' || key === 'disabled' || key === 'checked') node[key] = true;
      else node.setAttribute(key, String(value));
    });
    append(node, children);
    return node;
  }

  function append(node, children) {
    if (children === undefined || children === null) return node;
    (Array.isArray(children) ? children : [children]).forEach(function (child) {
      if (child === undefined || child === null || child === false) return;
      node.appendChild(typeof child === 'string' || typeof child === 'number'
        ? document.createTextNode(String(child)) : child);
    });
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function pad(n) {
    return n < 10 ? '0' + n : String(n);
  }

  /** "2024-05-01 14:03:07" in the browser's local time. */
  function localTime(iso) {
    if (!iso) return '';
    var d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso);
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }

  function utcTime(iso) {
    var d = new Date(iso);
    return isNaN(d.getTime()) ? String(iso) : d.toISOString().replace('.000Z', 'Z') + ' (UTC)';
  }

  /** A <time> showing `iso` in local time, with UTC in its title; '—' when empty. */
  function time(iso) {
    if (!iso) return el('span', { class: 'none', text: '—' });
    return el('time', { datetime: iso, title: utcTime(iso), text: localTime(iso) });
  }

  /** A datetime-local input's value (local time) as ISO 8601 UTC, or '' when empty. */
  function toUtc(value) {
    if (!value) return '';
    var d = new Date(value);
    return isNaN(d.getTime()) ? '' : d.toISOString();
  }

  /** ISO 8601 UTC as a datetime-local value (local time), or ''. */
  function toLocalInput(iso) {
    if (!iso) return '';
    var d = new Date(iso);
    if (isNaN(d.getTime())) return '';
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + 'T' +
      pad(d.getHours()) + ':' + pad(d.getMinutes());
  }

  function number(value, digits) {
    if (value === null || value === undefined || value === '') return '—';
    return typeof value === 'number' && digits !== undefined ? value.toFixed(digits) : String(value);
  }

  var source = null;
  var handlers = {};

  /**
   * Live updates from GET /api/v1/stream: SC.live('health', function (data) {…}).
   * One EventSource per page; data is parsed JSON. The browser reconnects by itself;
   * meanwhile data-testid="live-status" says updates are interrupted.
   */
  function live(kind, handler) {
    if (!window.EventSource) return;
    if (!source) {
      source = new EventSource('/api/v1/stream');
      source.onopen = function () {
        var status = byId('live-status');
        if (status) status.hidden = true;
      };
      source.onerror = function () {
        var status = byId('live-status');
        if (status) {
          status.textContent = 'live updates interrupted; reconnecting…';
          status.hidden = false;
        }
      };
    }
    if (!handlers[kind]) {
      handlers[kind] = [];
      source.addEventListener(kind, function (message) {
        var data;
        try {
          data = JSON.parse(message.data);
        } catch (e) {
          return;
        }
        handlers[kind].forEach(function (fn) {
          try {
            fn(data);
          } catch (err) {
            showError(err);
          }
        });
      });
    }
    handlers[kind].push(handler);
  }

  var me = {
    username: document.body.dataset.username || '',
    role: document.body.dataset.role || '',
    permissions: (document.body.dataset.permissions || '').split(' ').filter(Boolean),
    itemId: document.body.dataset.itemId || ''
  };

  /** Whether the signed-in role has a permission (e.g. 'see_faces', 'manage_watchlists'). */
  function can(permission) {
    return me.permissions.indexOf(permission) !== -1;
  }

  /** `action` as a click/submit handler that shows its errors and blocks double clicks. */
  function guarded(button, action) {
    return function (e) {
      if (e) e.preventDefault();
      if (button && button.disabled) return;
      if (button) button.disabled = true;
      clearError();
      Promise.resolve()
        .then(action)
        .catch(showError)
        .then(function () {
          if (button) button.disabled = false;
        });
    };
  }

  /**
   * A paged list: pager(fetchPage, render) where fetchPage(cursor) resolves to {items,
   * next_cursor} and render(items, append). Returns {reload(), more()}; wires #load-more
   * and #empty.
   */
  function pager(fetchPage, render) {
    var cursor = null;
    var more = byId('load-more');
    var empty = byId('empty');
    var shown = 0;
    var latest = 0; // a reload's answer that comes after a newer request's is dropped
    function load(next) {
      var request = next ? latest : ++latest;
      return fetchPage(next).then(function (page) {
        if (request !== latest) return;
        var items = (page && page.items) || [];
        shown = next ? shown + items.length : items.length;
        render(items, Boolean(next));
        cursor = page ? page.next_cursor : null;
        if (more) more.hidden = !cursor;
        if (empty) empty.hidden = shown > 0;
      });
    }
    if (more) more.addEventListener('click', guarded(more, function () { return load(cursor); }));
    return {
      reload: function () { return load(null); },
      more: function () { return load(cursor); },
      added: function (n) {
        shown += n;
        if (empty) empty.hidden = shown > 0;
      }
    };
  }

  function setupLogout() {
    var button = byId('logout');
    if (!button) return;
    button.addEventListener('click', guarded(button, function () {
      return api('/api/v1/auth/logout', { method: 'POST', signIn: false })
        .catch(function (err) {
          if (err.status !== 401) throw err; // already signed out: go on
        })
        .then(function () {
          if (source) source.close();
          location.assign('/login');
        });
    }));
  }

  // A page to go to after signing in: a local path only (no other site, no scheme).
  function safeNext(target) {
    if (!target || target.charAt(0) !== '/' || target.charAt(1) === '/' ||
        target.indexOf('\\') !== -1 || /[\u0000-\u001f\u007f]/.test(target)) {
      return '/';
    }
    return target;
  }

  setupLogout();

  window.SC = {
    api: api,
    ApiError: ApiError,
    append: append,
    can: can,
    clear: clear,
    clearError: clearError,
    cookie: cookie,
    el: el,
    guarded: guarded,
    live: live,
    localTime: localTime,
    me: me,
    notice: notice,
    number: number,
    pager: pager,
    query: query,
    safeNext: safeNext,
    showError: showError,
    time: time,
    toLocalInput: toLocalInput,
    toUtc: toUtc
  };
})();
