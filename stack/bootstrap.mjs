// First-command bootstrap for `npm start` and `npm test` on a fresh clone. Plain JavaScript on
// purpose: it runs before node_modules (and so tsx) exists.
//   node stack/bootstrap.mjs          install npm packages if missing or stale
//   node stack/bootstrap.mjs --test   also Debian's Chromium, for the admin panel's browser test
import { execFileSync } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const marker = join(root, 'node_modules', '.package-lock.json')
const lock = join(root, 'package-lock.json')

function run(cmd, args, env = {}) {
  console.error(`bootstrap: ${cmd} ${args.join(' ')}`)
  execFileSync(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, ...env } })
}

// npm writes node_modules/.package-lock.json on every install: older than the lock file means stale.
if (!existsSync(marker) || statSync(marker).mtimeMs < statSync(lock).mtimeMs) {
  run('npm', ['ci', '--no-audit', '--no-fund'])
}

if (process.argv.includes('--test') && !existsSync('/usr/bin/chromium')) {
  const sudo = process.getuid?.() === 0 ? [] : ['sudo']
  const apt = (...args) =>
    sudo.length
      ? run('sudo', ['apt-get', ...args], { DEBIAN_FRONTEND: 'noninteractive' })
      : run('apt-get', args, { DEBIAN_FRONTEND: 'noninteractive' })
  apt('update', '-qq')
  apt('install', '-y', '-qq', 'chromium')
}
