/**
 * The connections page: plain, accessible HTML (a real table with caption and header scopes, labelled form controls, a
 * polite status region, no script). Every action is an ordinary form, so it works with a keyboard, a screen reader and
 * curl alike.
 */
import type { ConnectionOverview } from '../../lib/connection-overview.js';
import { PROVIDERS, type PartitionSyncSummary } from '../../messages.js';
import { html, raw, type SafeHtml } from './html.js';

export interface PageNotice {
  kind: 'ok' | 'error';
  text: string;
}

export interface PageModel {
  connections: ConnectionOverview[];
  notice: PageNotice | null;
  temporalUiUrl: string;
  namespace: string;
  refreshSeconds: number | null;
  now: Date;
  /** Set when MongoDB could not be read: the page still renders, saying so. */
  loadError: string | null;
  /** CSRF token for this page's forms and connect links (security.ts). */
  csrfToken: string;
}

const STATE_LABEL: Record<string, string> = {
  awaiting_authorization: 'Awaiting authorization',
  connected: 'Connected',
  reauthorization_required: 'Reauthorization required',
  disconnected: 'Disconnected',
};

export function relative(iso: string | null, now: Date): string {
  if (!iso) return '';
  const s = Math.round((new Date(iso).getTime() - now.getTime()) / 1000);
  const abs = Math.abs(s);
  const [n, unit] =
    abs < 90
      ? [abs, 's']
      : abs < 5400
        ? [Math.round(abs / 60), 'min']
        : abs < 172800
          ? [Math.round(abs / 3600), 'h']
          : [Math.round(abs / 86400), 'd'];
  return s >= 0 ? `in ${n} ${unit}` : `${n} ${unit} ago`;
}

function time(iso: string | null, now: Date): SafeHtml {
  if (!iso) return html`<span class="muted">—</span>`;
  return html`<time datetime="${iso}" title="${iso}">${iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z')}</time> <span class="muted">(${relative(iso, now)})</span>`;
}

function connectHref(c: { tenantId: string; provider: string }, csrfToken: string): string {
  return `/connect?${new URLSearchParams({ tenantId: c.tenantId, provider: c.provider, _csrf: csrfToken }).toString()}`;
}

const csrfField = (token: string) => html`<input type="hidden" name="_csrf" value="${token}">`;

const actionPath = (c: ConnectionOverview, action: string) =>
  `/connections/${encodeURIComponent(c.provider)}/${encodeURIComponent(c.tenantId)}/${action}`;

function syncCell(c: ConnectionOverview, now: Date): SafeHtml {
  const ids = new Set([...c.partitions.map((p) => p.id), ...Object.keys(c.lastSync)]);
  if (ids.size === 0) return html`<span class="muted">not synced yet</span>`;
  const name = (id: string) => c.partitions.find((p) => p.id === id)?.name;
  const items = [...ids].map((id) => {
    const s: PartitionSyncSummary | undefined = c.lastSync[id];
    const label = name(id) ? html`${name(id)} <span class="muted">(${id})</span>` : html`${id}`;
    if (!s) return html`<li>${label}: <span class="muted">not synced yet</span></li>`;
    return html`<li>${label}: <strong class="sync-${s.status}">${s.status}</strong> ${s.mode}, ${time(s.finishedAt, now)}<br>
      <span class="counts">fetched ${s.fetched}, upserted ${s.upserted}, modified ${s.modified}, deleted ${s.deleted}, quarantined ${s.quarantined}</span>${
        s.error ? html`<br><span class="error-text">${s.error}</span>` : ''
      }</li>`;
  });
  return html`<ul class="plain">${items}</ul>`;
}

function actionsCell(c: ConnectionOverview, csrfToken: string): SafeHtml {
  const who = `${c.tenantId} (${c.provider})`;
  const parts: SafeHtml[] = [];
  if (c.state === 'awaiting_authorization' || c.state === 'reauthorization_required') {
    parts.push(html`<a class="button" href="${connectHref(c, csrfToken)}" aria-label="Reconnect ${who}">Reconnect</a>`);
    if (c.authorizationUrl) {
      parts.push(
        html`<a class="consent" href="${c.authorizationUrl}" aria-label="Consent link for ${who} (hand this to the customer)">consent link</a>`,
      );
    }
  }
  if (c.state === 'disconnected') {
    parts.push(
      html`<a class="button" href="${connectHref(c, csrfToken)}" aria-label="Connect ${who} again">Connect again</a>`,
    );
  }
  if (c.state === 'connected') {
    parts.push(html`<form method="post" action="${actionPath(c, 'sync-now')}" class="inline">${csrfField(csrfToken)}
      <label for="mode-${c.workflowId}" class="visually-hidden">Sync mode for ${who}</label>
      <select id="mode-${c.workflowId}" name="mode"><option value="incremental">incremental</option><option value="full">full</option></select>
      <button type="submit" aria-label="Sync ${who} now">Sync now</button>
    </form>`);
  }
  if (c.state !== 'disconnected') {
    parts.push(html`<form method="post" action="${actionPath(c, 'disconnect')}" class="inline">${csrfField(csrfToken)}
      <label><input type="checkbox" name="revoke" value="true" checked> revoke at Sage</label>
      <button type="submit" class="danger" aria-label="Disconnect ${who}">Disconnect</button>
    </form>`);
  }
  return html`<div class="actions">${parts}</div>`;
}

function row(c: ConnectionOverview, m: PageModel): SafeHtml {
  const uiHref = `${m.temporalUiUrl}/namespaces/${encodeURIComponent(m.namespace)}/workflows/${encodeURIComponent(c.workflowId)}`;
  const partitions = c.partitions.length
    ? html`<ul class="plain">${c.partitions.map((p) => html`<li>${p.name || p.id} <span class="muted">(${p.id}${p.siteId ? `, site ${p.siteId}` : ''})</span></li>`)}</ul>`
    : html`<span class="muted">—</span>`;
  return html`<tr data-workflow-id="${c.workflowId}" data-state="${c.state}">
    <th scope="row"><span class="tenant">${c.tenantId}</span><br><a class="muted" href="${uiHref}">${c.workflowId}</a></th>
    <td>${c.provider}</td>
    <td><span class="state state-${c.state}">${STATE_LABEL[c.state] ?? c.state}</span>${
      c.reason ? html`<br><code class="reason">${c.reason}</code>` : ''
    }${c.source === 'mongodb' ? html`<br><span class="muted">(from MongoDB; workflow not answering)</span>` : ''}</td>
    <td>${partitions}</td>
    <td>${time(c.accessTokenExpiresAt, m.now)}${c.tokenVersion !== null ? html`<br><span class="muted">version ${c.tokenVersion}, ${c.refreshCount ?? 0} refreshes</span>` : ''}</td>
    <td>${time(c.refreshTokenExpiresAt, m.now)}</td>
    <td>${syncCell(c, m.now)}</td>
    <td class="num">${c.customers ?? '—'}</td>
    <td>${actionsCell(c, m.csrfToken)}</td>
  </tr>`;
}

const STYLE = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5rem;color:#1b1b1b;background:#fff;line-height:1.4}
h1{font-size:1.6rem;margin:0 0 .25rem} h2{font-size:1.2rem;margin:1.5rem 0 .5rem}
a{color:#0b57d0} a:focus,button:focus,select:focus,input:focus{outline:3px solid #f9a825;outline-offset:2px}
table{border-collapse:collapse;width:100%;font-size:.92rem} caption{text-align:left;font-weight:600;padding:.4rem 0}
th,td{border:1px solid #c7c7c7;padding:.45rem .5rem;vertical-align:top;text-align:left} thead th{background:#eef2f7}
tbody th{font-weight:normal;min-width:12rem} .tenant{font-weight:600;overflow-wrap:anywhere} .num{text-align:right}
tbody th a{overflow-wrap:anywhere} td time{white-space:nowrap}
.muted{color:#595959;font-size:.85em} code.reason{background:#fff4e5;color:#7a3e00;padding:0 .2rem}
.state{font-weight:600;padding:.05rem .35rem;border-radius:.25rem;white-space:nowrap}
.state-connected{background:#e6f4ea;color:#0d652d} .state-awaiting_authorization{background:#e8f0fe;color:#174ea6}
.state-reauthorization_required{background:#fce8e6;color:#a50e0e} .state-disconnected{background:#eee;color:#3c3c3c}
.sync-succeeded{color:#0d652d} .sync-failed{color:#a50e0e} .error-text{color:#a50e0e}
ul.plain{list-style:none;margin:0;padding:0} ul.plain li+li{margin-top:.35rem}
.actions{display:flex;flex-direction:column;gap:.4rem;align-items:flex-start} form.inline{display:flex;gap:.35rem;align-items:center;flex-wrap:wrap}
button,.button{font:inherit;padding:.25rem .7rem;border:1px solid #0b57d0;background:#0b57d0;color:#fff;border-radius:.25rem;cursor:pointer;text-decoration:none}
button.danger{background:#fff;color:#a50e0e;border-color:#a50e0e}
.notice{padding:.6rem .8rem;border-radius:.25rem;margin:.8rem 0} .notice-ok{background:#e6f4ea} .notice-error{background:#fce8e6}
fieldset{border:1px solid #c7c7c7;padding:.6rem .8rem} fieldset div{display:inline-block;margin-right:1rem}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
`;

export function renderConnectionsPage(m: PageModel): string {
  const refreshLink = m.refreshSeconds
    ? html`<a href="/connections">stop auto-refresh</a>`
    : html`<a href="/connections?refresh=5">auto-refresh every 5 s</a>`;
  const body = html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${m.refreshSeconds ? html`<meta http-equiv="refresh" content="${m.refreshSeconds}">` : ''}
<title>Sage connections</title>
<style>${raw(STYLE)}</style>
</head>
<body>
<header>
  <h1>Sage connections</h1>
  <p class="muted">One Temporal workflow per tenant and provider keeps its OAuth tokens alive and schedules customer syncs.
  Open the <a href="${m.temporalUiUrl}/namespaces/${encodeURIComponent(m.namespace)}/workflows">Temporal UI</a> for histories and schedules.
  <a href="/connections">Refresh</a> · ${refreshLink}</p>
</header>
<main>
<div role="status" aria-live="polite">${m.notice ? html`<p class="notice notice-${m.notice.kind}">${m.notice.text}</p>` : ''}</div>
<section aria-labelledby="connect-heading">
  <h2 id="connect-heading">Connect a tenant</h2>
  <form method="get" action="/connect">${csrfField(m.csrfToken)}
    <fieldset>
      <legend>New connection: you will be sent to Sage to grant access</legend>
      <div><label for="tenantId">Tenant id</label>
        <input id="tenantId" name="tenantId" required pattern="[A-Za-z0-9_.\\-]{1,64}" maxlength="64" autocomplete="off" aria-describedby="tenant-help">
        <span id="tenant-help" class="muted">letters, digits, <code>_ . -</code></span></div>
      <div><label for="provider">Provider</label>
        <select id="provider" name="provider">${PROVIDERS.map((p) => html`<option value="${p}">${p}</option>`)}</select></div>
      <div><label for="edition">Sage 200 edition</label>
        <select id="edition" name="edition" aria-describedby="edition-help">
          <option value="">default (kept on reconnect; new: Professional)</option>
          <option value="sage200extra">Professional / Extra Online (sage200extra)</option>
          <option value="sage200">Standard Online (sage200)</option>
        </select>
        <span id="edition-help" class="muted">Sage 200 only</span></div>
      <button type="submit">Connect</button>
    </fieldset>
  </form>
</section>
<section aria-labelledby="list-heading">
  <h2 id="list-heading">Connections</h2>
  ${m.loadError ? html`<p class="notice notice-error">Could not read connections: ${m.loadError}</p>` : ''}
  ${
    m.connections.length === 0
      ? html`<p id="no-connections">No connections yet. Use the form above to connect a tenant.</p>`
      : html`<table id="connections">
    <caption>${m.connections.length} connection${m.connections.length === 1 ? '' : 's'}, as of ${m.now.toISOString()}</caption>
    <thead><tr>
      <th scope="col">Tenant</th><th scope="col">Provider</th><th scope="col">State</th><th scope="col">Partitions</th>
      <th scope="col">Access token expires</th><th scope="col">Refresh token expires</th><th scope="col">Last sync per partition</th>
      <th scope="col">Customers</th><th scope="col">Actions</th>
    </tr></thead>
    <tbody>${m.connections.map((c) => row(c, m))}</tbody>
  </table>`
  }
</section>
</main>
</body>
</html>
`;
  return body.value;
}
