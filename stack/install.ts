import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm } from 'node:fs/promises';
import { basename, delimiter, dirname, join } from 'node:path';
import { binCacheDir, repoRoot } from './paths.ts';
import { withLock } from './lock.ts';
import { withParentDeathSignal } from './proc.ts';

export const FERRETDB_VERSION = 'v1.24.2';
export const VERSITYGW_VERSION = 'v1.7.0';

export interface Binaries {
  redisServer: string;
  ferretdb: string;
  versitygw: string;
}

/**
 * Makes sure the three service binaries exist and returns their paths.
 * Idempotent and race-safe: each install runs under a lock and re-checks
 * after taking it, and Go builds write to a temp name that is renamed into
 * place, so a binary that exists is always complete.
 */
export async function ensureBinaries(): Promise<Binaries> {
  await mkdir(binCacheDir, { recursive: true });
  // Sequential on purpose: two Go builds at once on a 2-core machine are
  // no faster in total, and the output lines stay in order.
  const redisServer = await ensureRedis();
  const ferretdb = await ensureFerretDB();
  const versitygw = await ensureVersityGW();
  return { redisServer, ferretdb, versitygw };
}

async function ensureRedis(): Promise<string> {
  const found = findOnPath('redis-server');
  if (found) return found;
  if (process.getuid?.() !== 0) {
    throw new Error('redis-server not found; install it with: sudo apt-get install -y redis-server');
  }
  return withLock(join(binCacheDir, '.lock-apt'), async () => {
    const again = findOnPath('redis-server');
    if (again) return again;
    log('installing redis-server (apt-get)');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    await run('apt-get', ['update'], { env });
    await run('apt-get', ['install', '-y', '--no-install-recommends', 'redis-server'], { env });
    const installed = findOnPath('redis-server');
    if (!installed) throw new Error('apt-get installed redis-server but it is not on PATH');
    return installed;
  });
}

async function ensureFerretDB(): Promise<string> {
  const src = join(repoRoot, 'stack', 'ferretdb');
  // Key the binary by the exact sources, so editing main.go or bumping a
  // dependency rebuilds, while an unchanged checkout never does.
  const hash = createHash('sha256');
  for (const f of ['go.mod', 'go.sum', 'main.go']) hash.update(await readFile(join(src, f)));
  const bin = join(binCacheDir, `ferretdb-${FERRETDB_VERSION}-${hash.digest('hex').slice(0, 12)}`);
  return ensureBuilt(bin, `ferretdb ${FERRETDB_VERSION}`, async (tmp) => {
    // CGO off: FerretDB's SQLite is pure Go (modernc), so the binary is static.
    await run(goBinary(), ['build', '-trimpath', '-o', tmp, '.'], {
      cwd: src,
      env: { ...process.env, CGO_ENABLED: '0' },
      dieWithUs: true,
    });
  });
}

async function ensureVersityGW(): Promise<string> {
  const bin = join(binCacheDir, `versitygw-${VERSITYGW_VERSION}`);
  return ensureBuilt(bin, `versitygw ${VERSITYGW_VERSION}`, async (tmp) => {
    // `go install pkg@version` only writes into GOBIN, so install into a
    // private temp dir and move the result to the temp name.
    const gobin = await mkdtemp(`${tmp}-gobin-`); // under the tmp prefix, so orphans get cleaned
    try {
      await run(goBinary(), ['install', `github.com/versity/versitygw/cmd/versitygw@${VERSITYGW_VERSION}`], {
        cwd: binCacheDir, // outside any go.mod, so module mode uses only the pinned version
        env: { ...process.env, GOBIN: gobin, CGO_ENABLED: '0' },
        dieWithUs: true,
      });
      await rename(join(gobin, 'versitygw'), tmp);
    } finally {
      await rm(gobin, { recursive: true, force: true });
    }
  });
}

async function ensureBuilt(bin: string, what: string, build: (tmp: string) => Promise<void>): Promise<string> {
  if (isExecutable(bin)) return bin;
  return withLock(`${bin}.lock`, async () => {
    if (isExecutable(bin)) return bin; // another launch built it while we waited
    await removeOrphanTemps(bin);
    log(`building ${what} (once, 1-2 min)`);
    const tmp = `${bin}.tmp-${process.pid}`;
    try {
      await build(tmp);
      await rename(tmp, bin);
    } finally {
      await rm(tmp, { force: true });
    }
    return bin;
  });
}

/** Temp outputs of builds whose launcher was killed (we hold the lock now). */
async function removeOrphanTemps(bin: string): Promise<void> {
  const prefix = `${basename(bin)}.tmp-`;
  for (const name of await readdir(dirname(bin))) {
    if (name.startsWith(prefix)) await rm(join(dirname(bin), name), { recursive: true, force: true });
  }
}

function goBinary(): string {
  const go = findOnPath('go') ?? ['/usr/local/go/bin/go', '/usr/lib/go/bin/go'].find(isExecutable);
  if (!go) throw new Error('the Go toolchain is needed to build FerretDB and versitygw; `go` is not on PATH');
  return go;
}

function findOnPath(name: string): string | undefined {
  // Debian puts redis-server in /usr/bin, but sbin dirs are not on every PATH.
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin'];
  return dirs.filter(Boolean).map((d) => join(d, name)).find(isExecutable);
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function log(line: string): void {
  process.stderr.write(`stack: ${line}\n`);
}

interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Kill it if we die (a Go build: yes; apt-get: never, dpkg must finish). */
  dieWithUs?: boolean;
}

/** Runs a command quietly; on failure the error carries the output's tail. */
function run(command: string, commandArgs: string[], { cwd, env, dieWithUs }: RunOptions): Promise<void> {
  const [cmd, args] = dieWithUs ? withParentDeathSignal(command, commandArgs) : [command, commandArgs];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const keep = (b: Buffer) => {
      out = (out + b.toString()).slice(-8000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${command} ${commandArgs.join(' ')} failed (${signal ?? `exit ${code}`}):\n${out}`));
    });
  });
}
