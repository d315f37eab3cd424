// The page shell: header, navigation, and the workspace sub-navigation.
import type { WorkspaceRole } from '../../tokens/roles.ts'
import type { AdminIdentity } from '../security/auth.ts'
import { hasWorkspaceRole } from '../security/roles.ts'
import { html, seg, type SafeHtml } from './html.ts'

export interface WorkspaceRef {
  id: string
  slug: string
  name: string
  active: boolean
}

export type WorkspaceTab = 'dashboard' | 'sessions' | 'missing' | 'conflicts' | 'tokens' | 'webhooks' | 'settings'

/** Each tab is shown to whoever has the role its route declares (admin/security/roles.ts). */
const TABS: [WorkspaceTab, string, string, WorkspaceRole][] = [
  ['dashboard', 'Dashboard', 'dashboard', 'analyst'],
  ['sessions', 'Sessions', 'sessions', 'analyst'],
  ['missing', 'Missing media', 'missing-media', 'analyst'],
  ['conflicts', 'Conflicts', 'conflicts', 'analyst'],
  ['tokens', 'Tokens', 'tokens', 'owner'],
  ['webhooks', 'Webhooks', 'webhooks', 'owner'],
  ['settings', 'Settings', 'settings', 'owner'],
]

export interface PageOptions {
  title: string
  admin: AdminIdentity | null
  body: SafeHtml
  workspace?: WorkspaceRef
  tab?: WorkspaceTab
  top?: 'workspaces' | 'audit' | 'admins'
  notice?: string | null
  error?: string | null
}

export function logoutForm(admin: AdminIdentity): SafeHtml {
  return html`<form method="post" action="/logout" class="inline"><input type="hidden" name="_csrf" value="${admin.csrf}"><button class="link">Log out</button></form>`
}

export function page(o: PageOptions): string {
  const ws = o.workspace
  const header = o.admin
    ? html`<header class="top">
        <a class="brand" href="/workspaces">RDT ingest · admin</a>
        <nav>
          <a href="/workspaces" class="${o.top === 'workspaces' && !ws ? 'on' : ''}">Workspaces</a>
          <a href="/audit" class="${o.top === 'audit' ? 'on' : ''}">Audit log</a>
          ${o.admin.superadmin ? html`<a href="/admins" class="${o.top === 'admins' ? 'on' : ''}">Admins</a>` : ''}
        </nav>
        <span class="who">${o.admin.email} · ${logoutForm(o.admin)}</span>
      </header>`
    : html`<header class="top"><span class="brand">RDT ingest · admin</span></header>`
  const sub = ws
    ? html`<div class="wshead">
        <h1>${ws.name} <small>${ws.slug}</small>${ws.active ? '' : html` <span class="badge bad">inactive</span>`}</h1>
        <nav class="tabs">${TABS.filter(([, , , role]) => o.admin && hasWorkspaceRole(o.admin, ws.id, role)).map(([tab, label, path]) => html`<a href="/workspaces/${seg(ws.id)}/${path}" class="${o.tab === tab ? 'on' : ''}">${label}</a>`)}</nav>
      </div>`
    : ''
  return `<!doctype html>${
    html`<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${o.title} · RDT admin</title>
<link rel="stylesheet" href="/static/admin.css">
<script src="/static/admin.js" defer></script>
</head>
<body>
${header}
<main>
${sub}
${o.notice ? html`<p class="notice">${o.notice}</p>` : ''}
${o.error ? html`<p class="error" role="alert">${o.error}</p>` : ''}
${o.body}
</main>
</body>
</html>`.value
  }`
}

export function csrfField(admin: AdminIdentity): SafeHtml {
  return html`<input type="hidden" name="_csrf" value="${admin.csrf}">`
}
