// Strict HTML templating: every interpolated value is escaped unless it is already SafeHtml
// (the output of another `html` template or of `raw`, used only for markup we generate).
// Arrays are joined; null, undefined and false render as nothing.

export class SafeHtml {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;', '`': '&#96;' }

export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"'`]/g, (ch) => ESCAPES[ch]!)
}

function render(value: unknown): string {
  if (value === null || value === undefined || value === false) return ''
  if (value instanceof SafeHtml) return value.value
  if (Array.isArray(value)) return value.map(render).join('')
  return escapeHtml(value)
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0]!
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1]!
  return new SafeHtml(out)
}

/** Markup we produced ourselves (for example an SVG built from numbers). Never pass client data here. */
export const raw = (markup: string): SafeHtml => new SafeHtml(markup)

/** A URL path built from segments, each percent-encoded; query values likewise. */
export function href(path: string, query: Record<string, string | number | null | undefined> = {}): string {
  const q = Object.entries(query).filter(([, v]) => v !== undefined && v !== null && v !== '')
  return q.length ? `${path}?${q.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`).join('&')}` : path
}

export const seg = (s: string): string => encodeURIComponent(s)
