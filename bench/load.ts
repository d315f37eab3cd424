// Runs the load generator (bench/load-child.ts) in its own process and returns what it printed.
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { repoRoot } from '../stack/paths.ts'
import type { LoadSpec } from './load-child.ts'

let seq = 0

export async function runLoad<T>(dir: string, spec: LoadSpec): Promise<T> {
  // A file, not argv: the spec may name thousands of tokens (argv is visible in `ps`, and bounded).
  const file = join(dir, `load-${process.pid}-${++seq}.json`)
  writeFileSync(file, JSON.stringify(spec), { mode: 0o600 })
  const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'bench/load-child.ts'), file], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (c) => (out += c))
  child.stderr.on('data', (c) => (err += c))
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  if (code !== 0) throw new Error(`load generator (${spec.mode}) exited ${code}: ${err.slice(-2000)}`)
  const last = out.trim().split('\n').pop() ?? ''
  return JSON.parse(last) as T
}

/** Several generators at once (one per gateway process, for the scaling figure). */
export function runLoads<T>(dir: string, specs: LoadSpec[]): Promise<T[]> {
  return Promise.all(specs.map((s) => runLoad<T>(dir, s)))
}
