namespace Router.ControlPlane.Dashboard;

/// <summary>The dashboard's page, script and stylesheet, kept as strings so the single-file deploy needs no content root.</summary>
internal static class DashboardAssets
{
    public const string Html = """
        <!DOCTYPE html>
        <html lang="en">
        <head>
          <meta charset="utf-8">
          <meta name="viewport" content="width=device-width, initial-scale=1">
          <title>Router fleet</title>
          <link rel="stylesheet" href="/dashboard/app.css">
          <script src="/dashboard/app.js" defer></script>
        </head>
        <body>
          <header>
            <h1>Router fleet</h1>
            <div id="summary">
              <span>current config <strong id="current-version">–</strong></span>
              <span id="counts"></span>
              <span id="status" class="status">loading…</span>
            </div>
          </header>
          <main>
            <table id="routers">
              <thead>
                <tr>
                  <th>Node</th><th>State</th><th>Last seen</th><th>Applied version</th><th>Last NACK</th><th>Address / version</th>
                </tr>
              </thead>
              <tbody id="router-rows"></tbody>
            </table>
            <p id="empty" hidden>No router has connected since the control plane started.</p>
          </main>
        </body>
        </html>
        """;

    public const string Script = """
        'use strict';
        (() => {
          const POLL_MS = 1000;
          const token = takeToken();
          const $ = (id) => document.getElementById(id);

          // The token arrives in #token= (preferred: never sent to the server) or ?token=; keep it for this tab only
          // and take it out of the address bar so it is not bookmarked or shared by accident.
          function takeToken() {
            const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
            const query = new URLSearchParams(location.search);
            const fromQuery = query.get('token');
            const found = fromHash || fromQuery;
            if (found) {
              sessionStorage.setItem('router-admin-token', found);
              query.delete('token');
              const rest = query.toString();
              history.replaceState(null, '', location.pathname + (rest ? '?' + rest : ''));
              return found;
            }
            return sessionStorage.getItem('router-admin-token');
          }

          async function getJson(path) {
            const response = await fetch(path, { headers: { 'Authorization': 'Bearer ' + token }, cache: 'no-store' });
            if (response.status === 401) {
              throw new Error('unauthorized: open /dashboard#token=<admin token>');
            }
            if (!response.ok) {
              throw new Error(path + ': HTTP ' + response.status);
            }
            return response.json();
          }

          function el(tag, className, text) {
            const node = document.createElement(tag);
            if (className) node.className = className;
            if (text !== undefined && text !== null) node.textContent = String(text);
            return node;
          }

          function ago(iso, now) {
            const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
            if (seconds < 60) return seconds + ' s ago';
            if (seconds < 3600) return Math.floor(seconds / 60) + ' min ago';
            return Math.floor(seconds / 3600) + ' h ago';
          }

          function row(router, current, now) {
            const tr = el('tr');
            tr.dataset.node = router.nodeId;
            tr.appendChild(el('td', 'node', router.nodeId));

            const state = el('td', 'state');
            state.appendChild(el('span', router.connected ? 'badge up' : 'badge down', router.connected ? 'connected' : 'disconnected'));
            tr.appendChild(state);

            const seen = el('td', 'last-seen', ago(router.lastSeen, now));
            seen.title = router.lastSeen;
            tr.appendChild(seen);

            const applied = el('td', 'applied');
            if (router.appliedVersion === null || router.appliedVersion === undefined) {
              applied.appendChild(el('span', 'muted', 'none'));
            } else {
              applied.appendChild(el('span', 'version', 'v' + router.appliedVersion));
              if (current !== null && router.appliedVersion !== current) {
                applied.appendChild(el('span', 'badge behind', 'behind'));
              }
              if (router.appliedHash) {
                applied.appendChild(el('div', 'hash', router.appliedHash.slice(0, 12)));
              }
            }
            tr.appendChild(applied);

            const nack = el('td', 'nack');
            if (router.lastNackVersion === null || router.lastNackVersion === undefined) {
              nack.appendChild(el('span', 'muted', '—'));
            } else {
              nack.appendChild(el('div', 'nack-version', 'rejected v' + router.lastNackVersion));
              const list = el('ul', 'nack-errors');
              for (const error of router.lastNackErrors || []) {
                const item = el('li');
                item.appendChild(el('code', null, error.path));
                item.appendChild(document.createTextNode(' ' + error.message));
                list.appendChild(item);
              }
              nack.appendChild(list);
            }
            tr.appendChild(nack);

            const where = el('td', 'where');
            where.appendChild(el('div', null, router.remoteAddress || ''));
            where.appendChild(el('div', 'muted', router.routerVersion || ''));
            tr.appendChild(where);
            return tr;
          }

          function render(routers, current) {
            const now = Date.now();
            $('current-version').textContent = current === null ? 'none' : 'v' + current;
            const up = routers.filter((r) => r.connected).length;
            $('counts').textContent = routers.length + ' routers, ' + up + ' connected';
            const body = $('router-rows');
            body.replaceChildren(...routers.map((r) => row(r, current, now)));
            $('empty').hidden = routers.length > 0;
          }

          function setStatus(text, ok) {
            const status = $('status');
            status.textContent = text;
            status.className = 'status ' + (ok ? 'ok' : 'error');
          }

          async function refresh() {
            if (!token) {
              setStatus('no admin token: open /dashboard#token=<admin token>', false);
              return;
            }
            try {
              const [fleet, history] = await Promise.all([getJson('/api/routers'), getJson('/api/config/history')]);
              render(fleet.routers, history.current ?? null);
              setStatus('live · updated ' + new Date().toLocaleTimeString(), true);
            } catch (error) {
              // Keep the last table on screen: a CP restart should not blank the operator's view.
              setStatus(error.message, false);
            } finally {
              setTimeout(refresh, POLL_MS);
            }
          }

          refresh();
        })();
        """;

    public const string Styles = """
        :root { color-scheme: light; --fg: #1d2330; --muted: #6b7385; --line: #e3e6ec; --up: #17803d; --down: #b42318; --warn: #b54708; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: #f6f7f9; }
        header { display: flex; align-items: baseline; justify-content: space-between; padding: 16px 24px; background: #fff; border-bottom: 1px solid var(--line); }
        h1 { margin: 0; font-size: 20px; }
        #summary { display: flex; gap: 20px; color: var(--muted); }
        #summary strong { color: var(--fg); }
        .status.ok { color: var(--up); }
        .status.error { color: var(--down); font-weight: 600; }
        main { padding: 20px 24px; }
        table { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); border-radius: 6px; }
        th, td { padding: 10px 12px; text-align: left; vertical-align: top; border-bottom: 1px solid var(--line); }
        th { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); background: #fafbfc; }
        th, td.node, td.state, td.last-seen, td.applied { white-space: nowrap; }
        td.node { font-weight: 600; }
        .badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; }
        .badge.up { background: #dcfae6; color: var(--up); }
        .badge.down { background: #fee4e2; color: var(--down); }
        .badge.behind { margin-left: 6px; background: #fef0c7; color: var(--warn); }
        .version { font-weight: 600; }
        .hash, .muted { color: var(--muted); font-size: 12px; }
        .hash { font-family: ui-monospace, monospace; }
        .nack-version { color: var(--down); font-weight: 600; }
        .nack-errors { margin: 4px 0 0; padding-left: 18px; color: var(--down); }
        code { font-family: ui-monospace, monospace; font-size: 12px; background: #f2f4f7; padding: 0 4px; border-radius: 3px; color: var(--fg); }
        """;
}
