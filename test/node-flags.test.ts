// The production images spell out the Node flags of shared/node-flags.ts (a YAML/Dockerfile
// cannot import them); this keeps the three in step. npm start and the bench import the list.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { NODE_FLAGS } from '../shared/node-flags.ts'

const root = new URL('..', import.meta.url)
const read = (f: string) => readFileSync(new URL(f, root), 'utf8')

t.test('compose.yaml and the Dockerfile start the gateway with shared/node-flags.ts', async (t) => {
  const expected = JSON.stringify(['node', ...NODE_FLAGS.gateway, 'dist/gateway/server.js'])
  const compact = (s: string) => s.replace(/\s+/g, '')
  const compose = read('compose.yaml')
  const gateway = /\n {2}gateway:\n([\s\S]*?)\n {2}\S/.exec(compose)?.[1] ?? ''
  t.match(compact(gateway), compact(`command: ${expected}`), 'compose.yaml gateway command')
  t.match(compact(read('Dockerfile')), compact(`CMD ${expected}`), 'Dockerfile CMD')
  t.ok(NODE_FLAGS.gateway.length > 0, 'the gateway has flags to check')
})
