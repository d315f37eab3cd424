// The gateway never talks to MongoDB and never validates job payloads, so it must not load the
// MongoDB driver or TypeBox: together they were ~30 MB of its idle RSS (bench T4 target: within
// 1.5x a bare Fastify process). This walks the static import graph of gateway/server.ts (value
// imports only; `import type` is erased at build time) and lists the packages it reaches.
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')

/** Value import specifiers of a TypeScript source (import/export ... from, side-effect imports). */
export function valueImports(src: string): string[] {
  const out: string[] = []
  for (const m of src.matchAll(/^\s*(import|export)\s+(type\s+)?([^'";]*?)\s*from\s+['"]([^'"]+)['"]/gm)) {
    if (m[2]) continue // import type / export type
    const clause = m[3]!.trim()
    // `import { type A, type B } from` is type-only too.
    const braces = /^\{([^}]*)\}$/.exec(clause)
    if (
      braces &&
      braces[1]!
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
        .every((s) => s.startsWith('type '))
    )
      continue
    out.push(m[4]!)
  }
  for (const m of src.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm)) out.push(m[1]!)
  return out
}

function packagesReached(entry: string): Map<string, string> {
  const seen = new Set<string>()
  const packages = new Map<string, string>()
  const walk = (file: string) => {
    if (seen.has(file)) return
    seen.add(file)
    for (const spec of valueImports(readFileSync(file, 'utf8'))) {
      if (spec.startsWith('.')) {
        const next = resolve(dirname(file), spec)
        if (!existsSync(next)) throw new Error(`${file}: cannot resolve ${spec}`)
        walk(next)
      } else if (!spec.startsWith('node:')) {
        const parts = spec.split('/')
        const name = spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!
        if (!packages.has(name)) packages.set(name, file.slice(root.length + 1))
      }
    }
  }
  walk(entry)
  return packages
}

t.test('the import parser tells value imports from type-only ones', async (t) => {
  const src = [
    "import type { A } from 'pkg-a'",
    "import { type B, type C } from 'pkg-b'",
    "import { D, type E } from 'pkg-d'",
    "import F from 'pkg-f'",
    "export { G } from 'pkg-g'",
    "export type { H } from 'pkg-h'",
    "import 'pkg-side'",
  ].join('\n')
  t.same(valueImports(src).sort(), ['pkg-d', 'pkg-f', 'pkg-g', 'pkg-side'])
})

t.test('the gateway process loads neither the MongoDB driver nor TypeBox', async (t) => {
  const packages = packagesReached(resolve(root, 'gateway/server.ts'))
  t.ok(packages.has('fastify') && packages.has('bullmq'), `the walk reaches the gateway's own packages: ${[...packages.keys()].join(', ')}`)
  for (const forbidden of ['mongodb', 'bson', 'typebox', 'minio']) {
    t.notOk(packages.has(forbidden), `${forbidden} is not imported (first imported by ${packages.get(forbidden) ?? '-'})`)
  }
})

t.test('the worker does load them (the walk would notice)', async (t) => {
  const packages = packagesReached(resolve(root, 'worker/server.ts'))
  t.ok(packages.has('mongodb'))
  t.ok(packages.has('typebox'))
})
