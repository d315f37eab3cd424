// Content sniffing for uploaded media. The client's Content-Type is kept as metadata but never
// trusted: the stored object is labelled with what its bytes are. Only a short allowlist of
// magic numbers is recognised; everything else (HTML, SVG, scripts, unknown binaries) is
// application/octet-stream, so a browser that opens a stored object never renders it as a page
// or as an image it is not.

/** How many leading bytes `sniffType` looks at; pass at least this many when available. */
export const SNIFF_BYTES = 16

const startsWith = (buf: Buffer, sig: number[], offset = 0) =>
  buf.length >= offset + sig.length && sig.every((b, i) => buf[offset + i] === b)
const ascii = (buf: Buffer, start: number, end: number) => (buf.length >= end ? buf.toString('latin1', start, end) : '')

const HEIC_BRANDS = new Set(['heic', 'heix', 'hevc', 'hevx', 'heim', 'heis', 'hevm', 'hevs'])
const HEIF_BRANDS = new Set(['mif1', 'msf1', 'heif'])

/** The media type of a file, from its first bytes; 'application/octet-stream' when unknown. */
export function sniffType(firstBytes: Buffer): string {
  const b = firstBytes
  if (startsWith(b, [0xff, 0xd8, 0xff])) return 'image/jpeg'
  if (startsWith(b, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'image/png'
  const gif = ascii(b, 0, 6)
  if (gif === 'GIF87a' || gif === 'GIF89a') return 'image/gif'
  if (ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 12) === 'WEBP') return 'image/webp'
  if (ascii(b, 4, 8) === 'ftyp') {
    const brand = ascii(b, 8, 12)
    if (HEIC_BRANDS.has(brand)) return 'image/heic'
    if (HEIF_BRANDS.has(brand)) return 'image/heif'
  }
  if (ascii(b, 0, 5) === '%PDF-') return 'application/pdf'
  return 'application/octet-stream'
}
