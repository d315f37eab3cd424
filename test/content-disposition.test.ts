// The gateway's Content-Disposition parser (gateway/content-disposition.ts) on the real client's
// header and on hostile ones: same results as before, never throws, and linear work in the
// header's length (counted, not timed: timing belongs in benchmarks, not tests).
import t from 'tap'
import { readFileSync } from 'node:fs'
import { MAX_HEADER, parseContentDisposition } from '../gateway/content-disposition.ts'

t.test('real client headers and the cases the gateway always handled', async (t) => {
  const cases: [string | undefined, string | null][] = [
    ['attachment; filename=20210125_111802_cropped.jpg', '20210125_111802_cropped.jpg'],
    ['attachment; filename="20210125_111802_cropped.jpg"', '20210125_111802_cropped.jpg'],
    ['attachment;filename=a.jpg', 'a.jpg'],
    ['Attachment; FILENAME = "a b.jpg" ', 'a b.jpg'],
    ['attachment; filename=a b ü.jpg', 'a b ü.jpg'],
    [`attachment; filename="a.jpg"; filename*=UTF-8''%E2%82%AC%20rates.jpg`, '€ rates.jpg'],
    [`attachment; filename*=UTF-8''%E2%82%AC.jpg; filename="a.jpg"`, '€.jpg'],
    [`attachment; filename*=iso-8859-1'en'%A3%20rates.jpg`, '£ rates.jpg'],
    [`attachment; filename*=UTF-8''%E2%82.jpg`, '\ufffd.jpg'],
    ['attachment; filename="quoted \\"x\\".jpg"', 'quoted "x".jpg'],
    ['attachment; filename="semi;colon.jpg"', 'semi;colon.jpg'],
    ['attachment; filename="../../etc/passwd"', 'passwd'],
    ['attachment; filename=../../etc/passwd', 'passwd'],
    ["attachment; filename*=bogus''x.jpg", null],
    ['attachment', null],
    ['filename=x.jpg', null],
    ['', null],
    [undefined, null],
    ['attachment; filename="unterminated', null],
    ['attachment; filename=', null],
    ['attachment; =x; ;;; filename=ok.jpg', 'ok.jpg'],
    [`attachment; filename=${'x'.repeat(MAX_HEADER)}`, null],
  ]
  for (const [header, want] of cases) t.equal(parseContentDisposition(header), want, JSON.stringify(header?.slice(0, 60)))
})

/** The header as a String object whose charCodeAt counts the characters the parser looks at. */
function counted(s: string): { header: string; reads: () => number } {
  let n = 0
  // A String object, not a primitive, so that its charCodeAt can be replaced to count the reads.
  // eslint-disable-next-line @typescript-eslint/no-wrapper-object-types
  const obj = new String(s) as String & { charCodeAt(i: number): number }
  obj.charCodeAt = (i: number) => (n++, String.prototype.charCodeAt.call(s, i))
  return { header: obj as unknown as string, reads: () => n }
}

t.test('hostile 4 KB headers: the work done is linear in their length, and nothing throws', async (t) => {
  const shapes: [string, (n: number) => string][] = [
    ['unterminated quotes', (n) => 'attachment; filename=' + '"\\'.repeat(n / 2)],
    ['many empty parameters', (n) => 'attachment' + ';'.repeat(n)],
    ['one long token', (n) => 'attachment; filename=' + 'a'.repeat(n)],
    ['alternating quotes', (n) => 'attachment; filename=' + 'a"'.repeat(n / 2)],
    ['equals signs', (n) => 'attachment; ' + '='.repeat(n)],
    ['escaped quotes in a quoted string', (n) => 'attachment; filename="' + '\\"'.repeat(n / 2)],
  ]
  for (const [label, make] of shapes) {
    const reads: number[] = []
    for (const size of [1000, 2000, 4000]) {
      const c = counted(make(size))
      t.doesNotThrow(() => parseContentDisposition(c.header))
      reads.push(c.reads())
      t.ok(c.reads() <= 3 * (size + 30), `${label}, ${size} characters: ${c.reads()} character reads`)
    }
    t.ok(reads[2]! <= 4.5 * Math.max(reads[0]!, 1), `${label}: 4x the length is at most ~4x the work (${reads.join(', ')})`)
  }
})

t.test('no backtracking regex is left in the parser', async (t) => {
  const src = readFileSync(new URL('../gateway/content-disposition.ts', import.meta.url), 'utf8')
  // A quantified group whose body is itself quantified is what backtracks catastrophically.
  const nested = src
    .split('\n')
    .filter((l) => !l.trim().startsWith('//') && !l.trim().startsWith('*') && /\/.*\((?:[^()]*[+*][^()]*)\)[+*{]/.test(l))
  t.same(nested, [], 'no nested quantifiers')
})
