// The production image is built from the source folders the Dockerfile copies, which .dockerignore
// lets into the build context and tsconfig.build.json compiles. A product folder imported by one
// of them but missing from any of the three builds here and fails only in `docker build` (no
// Docker engine runs on these machines): so every relative import of the image's sources must
// stay inside folders all three name.
import t from 'tap'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const read = (f: string) => readFileSync(join(root, f), 'utf8')

const copied = [...read('Dockerfile').matchAll(/^COPY (\w[\w-]*) \1$/gm)].map((m) => m[1]!)
const allowed = [...read('.dockerignore').matchAll(/^!(\w[\w-]*)\/$/gm)].map((m) => m[1]!)
const built = (JSON.parse(read('tsconfig.build.json')) as { include: string[] }).include

function sources(dir: string): string[] {
  return readdirSync(join(root, dir)).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(join(root, path)).isDirectory()) return sources(path)
    return name.endsWith('.ts') && !name.endsWith('.test.ts') ? [path] : []
  })
}

t.test('the Dockerfile, .dockerignore and tsconfig.build.json name the same source folders', async (t) => {
  t.ok(copied.length >= 5, `the Dockerfile copies ${copied.join(', ')}`)
  t.same([...allowed].sort(), [...copied].sort(), '.dockerignore lets in what the Dockerfile copies')
  t.same([...built].sort(), [...copied].sort(), 'tsconfig.build.json compiles what the Dockerfile copies')
})

t.test('every relative import of the image sources stays inside the copied folders', async (t) => {
  const outside: string[] = []
  for (const file of copied.flatMap(sources)) {
    for (const m of read(file).matchAll(
      /(?:^|\s)(?:import|export)\s[^'"]*?from\s+'(\.[^']+)'|import\(\s*'(\.[^']+)'\s*\)|^import\s+'(\.[^']+)'/gm,
    )) {
      const spec = m[1] ?? m[2] ?? m[3]!
      const target = relative(root, resolve(root, dirname(file), spec))
      const top = target.split('/')[0]!
      if (!copied.includes(top)) outside.push(`${file} imports ${target}`)
    }
  }
  t.same(outside, [], 'no image source imports a folder the image leaves out')
})
