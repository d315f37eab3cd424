// Content-Disposition parsing (RFC 6266 with RFC 8187 `filename*`). The filename is only ever
// metadata, never part of a path, but it is still cleaned: no directories, no control
// characters, bounded length, so that whoever displays it later gets something sane.
const MAX_NAME = 255

function unquote(v: string): string {
  return v.startsWith('"') && v.endsWith('"') && v.length >= 2 ? v.slice(1, -1).replace(/\\(.)/g, '$1') : v
}

/** Decodes an RFC 8187 ext-value: charset'lang'pct-encoded. Only UTF-8 and ISO-8859-1 exist in practice. */
function decodeExtValue(v: string): string | null {
  const m = /^([A-Za-z0-9!#$&+^_`{}~-]+)'[^']*'(.*)$/.exec(v)
  if (!m) return null
  const charset = m[1]!.toLowerCase()
  const bytes: number[] = []
  const text = m[2]!
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '%' && /^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16))
      i += 2
    } else bytes.push(text.charCodeAt(i) & 0xff)
  }
  if (charset === 'utf-8') return Buffer.from(bytes).toString('utf8')
  if (charset === 'iso-8859-1') return Buffer.from(bytes).toString('latin1')
  return null
}

export function sanitizeFilename(name: string): string | null {
  // Keep only the last path segment (both separators), and drop control characters.
  const base = name.split(/[/\\]/).pop() ?? ''
  // eslint-disable-next-line no-control-regex
  const clean = base.replace(/[\u0000-\u001f\u007f-\u009f]/g, '').trim()
  if (!clean || clean === '.' || clean === '..') return null
  return [...clean].slice(0, MAX_NAME).join('')
}

/** Returns the cleaned filename, or null when there is none. Never throws. */
export function parseContentDisposition(header: string | undefined): string | null {
  if (!header || header.length > 4096) return null
  let plain: string | null = null
  let ext: string | null = null
  // Split on ';' outside quotes.
  const parts = header.match(/(?:[^;"]+|"(?:[^"\\]|\\.)*")+/g) ?? []
  for (const part of parts.slice(1)) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    const name = part.slice(0, eq).trim().toLowerCase()
    const value = part.slice(eq + 1).trim()
    if (name === 'filename*') ext = decodeExtValue(value)
    else if (name === 'filename') plain = unquote(value)
  }
  // filename* wins when both are present (RFC 6266 §4.3).
  const chosen = ext ?? plain
  return chosen === null ? null : sanitizeFilename(chosen)
}
