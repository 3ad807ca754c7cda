/**
 * The JavaScript embedded (in CDATA) in every flamegraph SVG. Kept apart from
 * the SVG writer so each stays readable. It reads the frame table `F`, the
 * layout constants in `L`, and per-frame `data-*` attributes; it never fetches
 * anything (the SVG must work from file:// and inside <object>).
 *
 * Frame `data-x`/`data-w` are byte offsets/widths (integers), so zoom
 * containment tests are exact rather than float comparisons of pixels.
 */
export const FLAMEGRAPH_SCRIPT = String.raw`
(function () {
  'use strict';
  var doc = document;
  var nodes = [];
  var all = doc.querySelectorAll('g.f');
  for (var i = 0; i < all.length; i++) {
    var g = all[i];
    nodes.push({
      g: g,
      r: g.querySelector('rect'),
      l: g.querySelector('text.l'),
      c: g.querySelector('text.c'),
      x: +g.getAttribute('data-x'),
      w: +g.getAttribute('data-w'),
      d: +g.getAttribute('data-d'),
      f: +g.getAttribute('data-f'),
    });
  }
  var details = doc.getElementById('details');
  var source = doc.getElementById('source');
  var matched = doc.getElementById('matched');
  var reset = doc.getElementById('reset');
  var search = doc.getElementById('search');
  var idle = details.textContent;
  var rootW = nodes.length ? nodes[0].w : 0;
  var zoomed = null;

  function human(b) {
    var u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'], k = 0, v = b;
    while (Math.abs(v) >= 1024 && k < u.length - 1) { v /= 1024; k++; }
    return k === 0 ? b + ' B' : v.toFixed(1) + ' ' + u[k];
  }
  function pct(b) { return (L.total > 0 ? (b / L.total) * 100 : 0).toFixed(2) + '%'; }
  function label(n) {
    if (n.f < 0) return 'all';
    var fr = F[n.f];
    return fr[1] === '' && fr[2] === 0 ? fr[0] : fr[0] + ' (' + fr[4] + ':' + fr[2] + ')';
  }
  function fit(text, px, charPx) {
    var max = Math.floor((px - 6) / charPx);
    if (max < 3) return '';
    return text.length <= max ? text : text.slice(0, max - 1) + '\u2026';
  }
  function place(n, px, pw) {
    n.g.style.display = '';
    n.r.setAttribute('x', px.toFixed(2));
    n.r.setAttribute('width', pw.toFixed(2));
    n.l.setAttribute('x', (px + 3).toFixed(2));
    n.l.textContent = fit(label(n), pw, L.labelChar);
    if (n.c) {
      n.c.setAttribute('x', (px + 3).toFixed(2));
      n.c.textContent = fit(n.f < 0 ? '' : F[n.f][3], pw, L.codeChar);
    }
  }
  function hide(n) {
    n.g.style.display = 'none';
    n.r.setAttribute('width', '0');
  }
  // Shows the subtree of z across the full width; its ancestors stay as
  // full-width (faded) context bars; everything else is hidden.
  function layout(z) {
    zoomed = z && z.w < rootW ? z : null;
    var zx = z ? z.x : 0, zw = z ? z.w : rootW, zd = z ? z.d : 0;
    for (var i = 0; i < nodes.length; i++) {
      var n = nodes[i];
      if (n.d < zd) {
        if (n.x <= zx && n.x + n.w >= zx + zw) { place(n, L.pad, L.width); n.g.classList.add('a'); }
        else hide(n);
      } else if (n.x >= zx && n.x + n.w <= zx + zw) {
        var pw = (n.w / zw) * L.width;
        if (pw < L.minPx) { hide(n); continue; }
        place(n, L.pad + ((n.x - zx) / zw) * L.width, pw);
        n.g.classList.remove('a');
      } else hide(n);
    }
    reset.setAttribute('class', zoomed ? 'btn' : 'btn off');
  }
  function show(n) {
    if (n.f < 0) {
      details.textContent = 'all \u2014 ' + human(n.w) + ' (' + pct(n.w) + ' of peak)';
      source.textContent = '';
      return;
    }
    var fr = F[n.f];
    details.textContent = fr[0] + ' \u2014 ' + fr[1] + ':' + fr[2] + ' \u2014 ' + human(n.w) + ' (' + pct(n.w) + ' of peak)';
    source.textContent = fr[3];
  }
  function find(term) {
    var re = null;
    if (term) {
      try { re = new RegExp(term, 'i'); }
      catch (e) { re = new RegExp(term.replace(/[.*+?^$()[\]{}|\\]/g, '\\$&'), 'i'); }
    }
    var spans = [];
    for (var i = 0; i < nodes.length; i++) {
      var n = nodes[i], fr = n.f < 0 ? null : F[n.f];
      var hit = !!(re && fr && (re.test(fr[0]) || re.test(fr[1] + ':' + fr[2]) || re.test(fr[3])));
      n.g.classList.toggle('m', hit);
      if (hit) spans.push([n.x, n.x + n.w]);
    }
    // Union of byte ranges: a match nested under another match is not counted twice.
    spans.sort(function (a, b) { return a[0] - b[0]; });
    var total = 0, end = -1;
    for (var j = 0; j < spans.length; j++) {
      var s = spans[j];
      if (s[1] <= end) continue;
      total += s[1] - Math.max(s[0], end);
      end = s[1];
    }
    matched.textContent = re ? 'Matched: ' + pct(total) + ' (' + human(total) + ')' : '';
  }
  function owner(t) {
    while (t && t !== doc) { if (t.classList && t.classList.contains('f')) return t; t = t.parentNode; }
    return null;
  }
  var byG = new Map();
  for (var k = 0; k < nodes.length; k++) byG.set(nodes[k].g, nodes[k]);
  var frames = doc.getElementById('frames');
  frames.addEventListener('mouseover', function (e) { var g = owner(e.target); if (g) show(byG.get(g)); });
  frames.addEventListener('mouseout', function (e) {
    if (!owner(e.relatedTarget)) { details.textContent = idle; source.textContent = ''; }
  });
  frames.addEventListener('click', function (e) { var g = owner(e.target); if (g) layout(byG.get(g)); });
  reset.addEventListener('click', function () { layout(null); });
  search.addEventListener('input', function () { find(search.value); });
  doc.addEventListener('keydown', function (e) {
    if ((e.ctrlKey || e.metaKey) && e.key === 'f') { e.preventDefault(); search.focus(); }
    else if (e.key === 'Escape') { search.value = ''; find(''); layout(null); }
  });
  // index.html embeds this SVG in an iframe and zooms it from its table of
  // top lines: {highwater: 'zoom', x, d} names a frame by byte offset and depth.
  window.addEventListener('message', function (e) {
    var m = e.data;
    if (!m || m.highwater !== 'zoom') return;
    for (var i = 0; i < nodes.length; i++) {
      if (nodes[i].x === m.x && nodes[i].d === m.d) { layout(nodes[i]); show(nodes[i]); return; }
    }
  });
  layout(null);
})();
`;
