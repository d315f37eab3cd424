// Password input for `npm run cli -- admin create <email>`: a prompt with echo off (asked twice)
// on a terminal, or the whole of stdin with --password-stdin (one trailing newline removed).
import { Readable } from 'node:stream'
import { CliError } from './errors.ts'

export async function readStdinPassword(input: Readable = process.stdin): Promise<string> {
  const chunks: Buffer[] = []
  for await (const c of input) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(String(c)))
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '')
}

function promptHidden(prompt: string): Promise<string> {
  const stdin = process.stdin
  return new Promise((resolve, reject) => {
    process.stderr.write(prompt)
    let value = ''
    stdin.setRawMode(true)
    stdin.resume()
    stdin.setEncoding('utf8')
    const done = (err: Error | null) => {
      stdin.setRawMode(false)
      stdin.pause()
      stdin.removeListener('data', onData)
      process.stderr.write('\n')
      if (err) reject(err)
      else resolve(value)
    }
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') return done(null)
        if (ch === '\u0003') return done(new CliError('prompt_cancelled', 'cancelled'))
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1)
        else if (ch >= ' ') value += ch
      }
    }
    stdin.on('data', onData)
  })
}

export async function readAdminPassword(fromStdin: boolean): Promise<string> {
  if (fromStdin) return readStdinPassword()
  if (!process.stdin.isTTY) throw new CliError('no_terminal', 'no terminal to ask for the password on; pipe it in with --password-stdin')
  const first = await promptHidden('Password (at least 12 characters): ')
  const second = await promptHidden('Repeat the password: ')
  if (first !== second) throw new CliError('passwords_differ', 'the passwords differ')
  return first
}
