/* safecity console — camera grid (/).
 *
 * data-testid: camera-grid, camera-tile (data-camera=<name>), camera-live (the <img> of a
 * running camera), camera-offline (placeholder of a camera not running in this server),
 * camera-health (the figures under a tile, updated from SSE `health`), empty.
 *
 * A browser opens at most six HTTP/1.1 connections to a server and every MJPEG stream
 * holds one open, so the first MJPEG_STREAMS live cameras stream live.mjpg and the rest
 * refresh frame.jpg every REFRESH_MS (keeping connections free for the API and SSE).
 */
(function () {
  'use strict';
  var MJPEG_STREAMS = 3;
  var REFRESH_MS = 1000;
  var grid = document.getElementById('camera-grid');
  var empty = document.getElementById('empty');
  var tiles = {};

  function cameraPath(name, file) {
    return '/api/v1/cameras/' + encodeURIComponent(name) + '/' + file;
  }

  function healthLine(h) {
    if (!h) return 'no health report yet';
    var parts = ['state ' + h.state];
    if (h.updated_at) parts.push('reported ' + SC.localTime(h.updated_at));
    if (h.host) parts.push('on ' + h.host);
    if (h.last_error) parts.push('last error: ' + h.last_error);
    return parts.join(' · ');
  }

  function figure(label, value) {
    return [SC.el('dt', { text: label }), SC.el('dd', { text: value })];
  }

  function renderHealth(tile, h) {
    var box = tile.health;
    SC.clear(box);
    tile.node.classList.toggle('stale', Boolean(h && h.stale));
    if (!h) {
      SC.append(box, figure('state', 'no report yet'));
      return;
    }
    SC.append(box, [].concat(
      figure('state', h.state + (h.stale ? ' (stale)' : '')),
      figure('frames in', SC.number(h.frames_in)),
      figure('analysed', SC.number(h.frames_analysed)),
      figure('lag', SC.number(h.lag_s, 1) + ' s'),
      figure('detector', SC.number(h.detector_ms, 0) + ' ms'),
      figure('updated', SC.localTime(h.updated_at))
    ));
    if (tile.offlineLine) tile.offlineLine.textContent = healthLine(h);
  }

  function offline(tile, why) {
    tile.offlineLine = SC.el('span', { class: 'last-health', text: healthLine(tile.last) });
    var placeholder = SC.el('div', { class: 'placeholder', testid: 'camera-offline' }, [
      SC.el('strong', { text: why }), tile.offlineLine
    ]);
    SC.clear(tile.view).appendChild(placeholder);
  }

  function liveView(tile, name, stream) {
    var img = SC.el('img', {
      testid: 'camera-live',
      alt: 'live view of ' + name,
      src: stream ? cameraPath(name, 'live.mjpg') : cameraPath(name, 'frame.jpg') + '?t=' + Date.now()
    });
    img.addEventListener('error', function () {
      offline(tile, 'the live view stopped (the camera is not running in this server)');
    });
    SC.clear(tile.view);
    if (stream) {
      // Chromium shows an MJPEG part only once the next one starts: until then (and for a
      // camera whose picture stands still) the latest frame shows beneath the stream.
      var still = SC.el('img', { class: 'still', alt: '', src: cameraPath(name, 'frame.jpg') });
      still.addEventListener('error', function () { still.remove(); });
      tile.view.appendChild(still);
    } else {
      img.addEventListener('load', function () {
        setTimeout(function () {
          if (img.isConnected) img.src = cameraPath(name, 'frame.jpg') + '?t=' + Date.now();
        }, REFRESH_MS);
      });
    }
    tile.view.appendChild(img);
  }

  function tile(camera, stream) {
    var node = SC.el('article', { class: 'tile', testid: 'camera-tile', data: { camera: camera.name } });
    var t = { node: node, last: camera.health, offlineLine: null };
    t.view = SC.el('div', { class: 'view' });
    t.health = SC.el('dl', { class: 'figures', testid: 'camera-health' });
    SC.append(node, [
      SC.el('header', {}, [
        SC.el('h2', { text: camera.name }),
        camera.location ? SC.el('span', { class: 'location', text: camera.location }) : null
      ]),
      t.view,
      t.health
    ]);
    if (camera.live) liveView(t, camera.name, stream);
    else offline(t, 'not running in this server');
    renderHealth(t, camera.health);
    return t;
  }

  function load() {
    return SC.api('/api/v1/cameras', { params: { limit: 500 } }).then(function (page) {
      var cameras = page.items || [];
      var streams = 0;
      SC.clear(grid);
      tiles = {};
      cameras.forEach(function (camera) {
        var stream = camera.live && streams < MJPEG_STREAMS;
        if (stream) streams += 1;
        var t = tile(camera, stream);
        tiles[camera.name] = t;
        grid.appendChild(t.node);
      });
      empty.hidden = cameras.length > 0;
    });
  }

  SC.live('health', function (list) {
    (list || []).forEach(function (h) {
      var t = tiles[h.camera];
      if (t) {
        t.last = h;
        renderHealth(t, h);
      }
    });
  });

  load().catch(SC.showError);
})();
