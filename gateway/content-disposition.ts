// Content-Disposition parsing (RFC 6266 with RFC 8187 `filename*`). The filename is only ever
// metadata, never part of a path, but it is still cleaned: no directories, no control
// characters, bounded length, so that whoever displays it later gets something sane.
//
// The header is split into parameters by the `content-disposition` package's parser: one
// left-to-right scan, linear in the header's length (the hand-written regex it replaces,
// `(?:[^;"]+|"(?:[^"\\]|\\.)*")+`, backtracked quadratically on a hostile 4 KB header).
import { decodeExtended, parse } from 'content-disposition'

const MAX_NAME = 255
/** Longer headers are not parsed at all (no real client sends one). */
export const MAX_HEADER = 4096

/**
 * Decodes an RFC 8187 ext-value (charset'lang'pct-encoded) byte by byte, for what the package's
 * strict decoder refuses: malformed UTF-8 becomes U+FFFD instead of losing the name. Only UTF-8
 * and ISO-8859-1 exist in practice. Linear: one pass over the value.
 */
function decodeExtValueLenient(v: string): string | null {
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
  const clean = base.replace(/[\u0000-\u001f\u007f-\u009f]/g, '').trim()
  if (!clean || clean === '.' || clean === '..') return null
  return [...clean].slice(0, MAX_NAME).join('')
}

/** Returns the cleaned filename, or null when there is none. Never throws. */
export function parseContentDisposition(header: string | undefined): string | null {
  if (!header || header.length > MAX_HEADER) return null
  try {
    // extended: false keeps `filename*` as sent, so that it can be decoded leniently below.
    const { parameters } = parse(header, { extended: false })
    const star = parameters['filename*']
    const plain = parameters.filename
    // filename* wins when both are present and it decodes (RFC 6266 §4.3).
    const ext = star === undefined ? null : (decodeExtended(star) ?? decodeExtValueLenient(star))
    const chosen = ext ?? plain ?? null
    return chosen === null ? null : sanitizeFilename(chosen)
  } catch {
    return null
  }
}
