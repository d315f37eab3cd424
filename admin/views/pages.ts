// Small shared pages.
import type { AdminIdentity } from '../security/auth.ts'
import { html } from './html.ts'
import { page } from './layout.ts'

export function errorPage(admin: AdminIdentity | null, title: string, message: string): string {
  return page({ title, admin, body: html`<h1>${title}</h1><p>${message}</p><p><a href="/workspaces">Back to the workspaces</a></p>` })
}
