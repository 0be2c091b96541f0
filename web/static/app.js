// athena-edge browser demo. The page is a thin view: every memory, score
// and sync decision comes from the Go core in athena.wasm (globalThis.athena,
// see hosts/wasm/js). Content is only ever put in the page as text
// (textContent, text nodes; never parsed as HTML), so nothing stored can run
// as markup.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const DB_NAME = 'athena-edge';
  const STORE = 'kv';

  // ---- IndexedDB: the device ID and the store's snapshot ----
  let idb;
  function idbOpen() {
    return new Promise((resolve, reject) => {
      const req = indexedDB.open(DB_NAME, 1);
      req.onupgradeneeded = () => req.result.createObjectStore(STORE);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  function idbGet(key) {
    return new Promise((resolve, reject) => {
      const req = idb.transaction(STORE, 'readonly').objectStore(STORE).get(key);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  function idbPut(key, value) {
    return new Promise((resolve, reject) => {
      const tx = idb.transaction(STORE, 'readwrite');
      tx.objectStore(STORE).put(value, key);
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error || new Error('IndexedDB transaction aborted'));
    });
  }
  function idbClear() {
    return new Promise((resolve, reject) => {
      const tx = idb.transaction(STORE, 'readwrite');
      tx.objectStore(STORE).clear();
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
    });
  }

  function newDeviceID() {
    if (crypto.randomUUID) return 'web-' + crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16)); // insecure contexts have no randomUUID
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `web-${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  // ---- DOM helpers (text only) ----
  function el(tag, attrs, ...children) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') n.className = v;
      else if (k.startsWith('data-')) n.setAttribute(k, v);
      else n[k] = v;
    }
    for (const c of children) {
      if (c == null) continue;
      n.append(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return n;
  }
  const short = (id) => (id || '').slice(0, 13);
  const fmt = (x, d = 3) => (typeof x === 'number' ? x.toFixed(d) : '–');
  const when = (iso) => {
    const t = new Date(iso);
    return isNaN(t) ? '' : t.toLocaleString();
  };

  let me = ''; // this tab's device
  function deviceLabel(device) {
    if (device === me) return 'this tab';
    if (/^web-/.test(device)) return 'tab ' + short(device.slice(4));
    return device;
  }
  function deviceBadge(device, kind) {
    const k = device === me ? 'self' : (kind || (/^web-/.test(device) ? 'browser' : 'edge'));
    return el('span', { class: 'badge dev', 'data-kind': k, title: device }, deviceLabel(device));
  }
  function tagList(tags) {
    if (!tags || !tags.length) return null;
    return el('span', { class: 'tags' }, ...tags.map((t) => el('span', { class: 'tag' }, '#' + t)));
  }

  // ---- the core ----
  const api = {};
  function wrap(name) {
    api[name] = async (arg) => JSON.parse(await globalThis.athena[name](arg === undefined ? undefined : JSON.stringify(arg)));
  }

  async function loadCore() {
    const slow = setTimeout(() => {
      $('boot').textContent = 'Loading the core… on its first start, athena-edge serve compiles the browser core ' +
        'with Go (about a minute once; a second or two after that).';
    }, 2000);
    try {
      const go = new Go();
      const resp = fetch('/athena.wasm');
      let inst;
      try {
        inst = await WebAssembly.instantiateStreaming(resp, go.importObject);
      } catch (err) {
        const r = await fetch('/athena.wasm');
        if (!r.ok) throw new Error(`the browser core is not available (HTTP ${r.status}): ${(await r.text()).slice(0, 500)}`);
        inst = await WebAssembly.instantiate(await r.arrayBuffer(), go.importObject);
      }
      go.run(inst.instance).then(() => fatal('the core stopped; reload the page'));
      if (!globalThis.athena) throw new Error('the core did not start');
      ['remember', 'recall', 'list', 'status', 'setOnline', 'syncNow', 'flush', 'bench'].forEach(wrap);
    } finally {
      clearTimeout(slow);
    }
  }

  function fatal(msg) {
    $('fatal').textContent = msg;
    $('fatal').hidden = false;
    $('boot').hidden = true;
  }

  // ---- views ----
  function renderList(res) {
    $('local-count').textContent = String(res.total);
    const items = res.memories.map((m) => {
      const label = { pending: 'pending', synced: 'synced', rejected: 'rejected', received: 'received' }[m.sync] || m.sync;
      return el('li', { 'data-id': m.id, 'data-sync': m.sync },
        el('p', { class: 'content' }, m.content),
        el('p', { class: 'meta' },
          el('span', { class: 'badge sync', 'data-sync': m.sync, title: m.reason || '' }, label),
          deviceBadge(m.device), tagList(m.tags), el('time', { dateTime: m.created_at }, when(m.created_at))),
        m.reason ? el('p', { class: 'reason' }, m.reason) : null);
    });
    if (!items.length) items.push(el('li', { class: 'empty' }, 'Nothing yet. Remember something above.'));
    $('local-list').replaceChildren(...items);
  }

  const STATE_TEXT = {
    offline: 'sync: offline', connecting: 'sync: connecting', connected: 'sync: connected',
    retrying: 'sync: retrying', stopped: 'sync: stopped', disabled: 'sync: off',
  };
  function renderStatus(st) {
    const s = $('sync-state');
    s.dataset.state = st.state;
    s.textContent = STATE_TEXT[st.state] || 'sync: ' + st.state;
    const net = $('net');
    net.dataset.state = navigator.onLine ? 'online' : 'offline';
    net.textContent = navigator.onLine ? 'online' : 'offline';
    $('device').textContent = st.device;
    $('st-pending').textContent = String(st.pending);
    $('st-applied').textContent = String(st.applied);
    $('st-rejected').textContent = String(st.rejected.length);
    $('st-pulled').textContent = String(st.pulled);
    $('sync-card').dataset.pending = String(st.pending);
    $('sync-card').dataset.state = st.state;
    const parts = [];
    if (st.error) parts.push(st.error);
    if (st.save_error) parts.push(st.save_error);
    if (st.state === 'offline') parts.push('Working offline: changes wait here and sync when the network is back.');
    if (st.last_sync) parts.push('Last exchange ' + when(st.last_sync) + '.');
    $('sync-detail').textContent = parts.join(' ');
    $('rejected-list').replaceChildren(...st.rejected.map((d) =>
      el('li', {}, el('code', {}, `#${d.seq} ${d.kind}`), ' ', d.reason)));
  }

  let refreshing = null;
  let again = false;
  async function refresh() {
    if (refreshing) { again = true; return refreshing; }
    refreshing = (async () => {
      do {
        again = false;
        try {
          const [st, list] = await Promise.all([api.status(), api.list({ limit: 100 })]);
          renderStatus(st);
          renderList(list);
        } catch (err) {
          $('sync-detail').textContent = String(err.message || err);
        }
      } while (again);
    })();
    try { await refreshing; } finally { refreshing = null; }
  }
  let refreshTimer = 0;
  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => { refresh(); pollServer(); }, 60);
  }

  // ---- the server's view (GET /v1/demo/memories) ----
  let serverTimer = 0;
  let serverSeen = 0;
  async function pollServer() {
    clearTimeout(serverTimer);
    serverTimer = setTimeout(pollServer, document.hidden ? 10000 : 2000);
    if (!navigator.onLine) {
      $('server-age').textContent = serverSeen ? `offline; as of ${new Date(serverSeen).toLocaleTimeString()}` : 'offline';
      return;
    }
    try {
      const r = await fetch('/v1/demo/memories?limit=100', { cache: 'no-store' });
      if (r.status === 404) {
        $('server-age').textContent = 'the server\'s demo view is off (athena-edge serve --demo)';
        clearTimeout(serverTimer);
        return;
      }
      if (!r.ok) throw new Error('HTTP ' + r.status);
      const v = await r.json();
      serverSeen = Date.now();
      $('server-age').textContent = 'live';
      $('server-count').textContent = String(v.memories.length);
      const items = v.memories.map((m) => el('li', { 'data-id': m.id, 'data-device': m.device },
        el('p', { class: 'content' }, m.content),
        el('p', { class: 'meta' }, deviceBadge(m.device), tagList(m.tags),
          el('time', { dateTime: m.created_at }, when(m.created_at)))));
      if (!items.length) items.push(el('li', { class: 'empty' }, 'The server holds no memories in project default yet.'));
      $('server-list').replaceChildren(...items);
      const devs = v.devices.filter((d) => !d.revoked).map((d) =>
        el('li', {}, deviceBadge(d.device, d.kind), ' ', el('span', { class: 'hint' }, d.kind)));
      devs.unshift(el('li', {}, el('span', { class: 'badge dev', 'data-kind': 'server', title: v.server_device }, 'server'),
        ' ', el('span', { class: 'hint' }, v.server_device)));
      $('device-list').replaceChildren(...devs);
    } catch (err) {
      $('server-age').textContent = 'unreachable: ' + (err.message || err);
    }
  }

  // ---- actions ----
  function explainLine(h) {
    const e = h.explain || {};
    const bits = [
      `semantic ${fmt(e.semantic_raw)} → ${fmt(e.semantic_contribution)}`,
      `keyword ${fmt(e.keyword_raw)} (norm ${fmt(e.keyword_normalized)}) → ${fmt(e.keyword_contribution)}`,
      `ranks vector ${e.vector_rank || '–'} keyword ${e.keyword_rank || '–'}`,
    ];
    if (e.matched_terms && e.matched_terms.length) bits.push('terms ' + e.matched_terms.join(', '));
    if (e.vector_exact) bits.push('exact');
    return bits.join(' · ');
  }

  async function onRemember(ev) {
    ev.preventDefault();
    const content = $('remember-content').value.trim();
    if (!content) return;
    const tags = $('remember-tags').value.split(',').map((t) => t.trim()).filter(Boolean);
    $('remember-btn').disabled = true;
    try {
      const m = await api.remember({ content, tags });
      $('remember-content').value = '';
      $('remember-msg').textContent = `Saved in this tab (${m.sync}).`;
      await refresh();
    } catch (err) {
      $('remember-msg').textContent = 'Not saved: ' + (err.message || err);
    } finally {
      $('remember-btn').disabled = false;
      $('remember-content').focus();
    }
  }

  async function onRecall(ev) {
    ev.preventDefault();
    const query = $('recall-query').value.trim();
    if (!query) return;
    try {
      const res = await api.recall({ query, k: 5 });
      $('recall-msg').textContent = `${res.hits.length} result${res.hits.length === 1 ? '' : 's'} in ${res.took_ms.toFixed(1)} ms, computed in this tab.`;
      $('recall-results').replaceChildren(...res.hits.map((h) => el('li', { 'data-id': h.id },
        el('p', { class: 'content' }, el('span', { class: 'score', title: 'hybrid score' }, fmt(h.hybrid)), ' ', h.content),
        el('p', { class: 'meta' }, deviceBadge(h.device), tagList(h.tags)),
        el('p', { class: 'explain' }, explainLine(h)))));
    } catch (err) {
      $('recall-msg').textContent = 'Recall failed: ' + (err.message || err);
    }
  }

  async function onBench() {
    $('bench-btn').disabled = true;
    $('bench-out').textContent = 'Running…';
    try {
      const r = await api.bench({ n: 5000, queries: 50 });
      $('bench-out').textContent = `${r.n} memories added in ${Math.round(r.add_ms)} ms; recall p50 ${r.p50_ms.toFixed(1)} ms, ` +
        `p95 ${r.p95_ms.toFixed(1)} ms, max ${r.max_ms.toFixed(1)} ms (${r.queries} queries).`;
      return r;
    } finally {
      $('bench-btn').disabled = false;
    }
  }

  async function onReset() {
    if (!confirm('Delete this tab\'s memories and device identity? Memories already synced stay on the server.')) return;
    await idbClear();
    location.reload();
  }

  function setOnline() {
    api.setOnline({ online: navigator.onLine }).then(scheduleRefresh);
  }

  async function main() {
    if ('serviceWorker' in navigator && window.isSecureContext) {
      navigator.serviceWorker.register('/sw.js').catch(() => {}); // offline reloads; optional
    }
    try {
      idb = await idbOpen();
      let device = await idbGet('device');
      if (!device) {
        device = newDeviceID();
        await idbPut('device', device);
      }
      const snapshot = await idbGet('snapshot');
      me = device;
      await loadCore();
      const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
      await globalThis.athena.open({
        device,
        snapshot: snapshot || null,
        syncURL: `${scheme}//${location.host}/v1/sync`,
        ticketURL: `${location.origin}/v1/demo/ticket`,
        persist: (bytes) => idbPut('snapshot', bytes),
        changed: scheduleRefresh,
      });
    } catch (err) {
      fatal('The edge could not start: ' + (err.message || err) +
        ' — if the saved store is damaged, “Reset this tab” (after reload) or clearing the site data starts over.');
      console.error(err);
      return;
    }
    $('remember-form').addEventListener('submit', onRemember);
    $('recall-form').addEventListener('submit', onRecall);
    $('remember-content').addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) $('remember-form').requestSubmit();
    });
    $('sync-btn').addEventListener('click', () => api.syncNow().then(scheduleRefresh));
    $('reset-btn').addEventListener('click', onReset);
    $('bench-btn').addEventListener('click', () => onBench().catch((err) => { $('bench-out').textContent = String(err); }));
    window.addEventListener('online', setOnline);
    window.addEventListener('offline', setOnline);
    document.addEventListener('visibilitychange', () => {
      if (document.hidden) api.flush().catch(() => {});
      else pollServer();
    });
    setOnline();
    await refresh();
    pollServer();
    $('boot').hidden = true;
    $('app').hidden = false;
    // Page-ready mark for the end-to-end test and docs/BENCHMARKS.md:
    // navigation start → the edge is open and its memories are on screen.
    window.athenaReadyMs = performance.now();
    document.body.dataset.ready = 'true';
    window.athenaTest = { api, bench: onBench };
  }

  main();
})();
