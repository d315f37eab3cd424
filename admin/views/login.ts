// The log-in page.
import { html } from './html.ts'
import { page } from './layout.ts'

export function loginPage(token: string, next: string, opts: { email?: string; error?: string | null } = {}): string {
  return page({
    title: 'Log in',
    admin: null,
    error: opts.error,
    body: html`<div class="login card">
      <h1>Log in</h1>
      <form method="post" action="/login" class="stack">
        <input type="hidden" name="_csrf" value="${token}">
        <input type="hidden" name="next" value="${next}">
        <label>Email <input type="email" name="email" autocomplete="username" required value="${opts.email ?? ''}"></label>
        <label>Password <input type="password" name="password" autocomplete="current-password" required></label>
        <button type="submit">Log in</button>
      </form>
      <p class="muted">No account yet? An operator creates the first one with <code>npm run cli -- admin create &lt;email&gt;</code>.</p>
    </div>`,
  })
}
