// `npm start`: the whole app on this machine: the local stack (unless the
// environment already names the services), then gateway, worker and, when
// present, admin, with their output prefixed by name.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensureBinaries } from './install.ts';
import { startStack, type Stack } from './launcher.ts';
import { repoRoot } from './paths.ts';
import { withParentDeathSignal } from './proc.ts';
import { onShutdownSignal } from './signals.ts';
import { NODE_FLAGS } from '../shared/node-flags.ts';

const CHILD_STOP_TIMEOUT_MS = 15_000;

let stack: Stack | undefined;
if (!['REDIS_URL', 'MONGODB_URL', 'S3_ENDPOINT'].every((k) => process.env[k])) {
  try {
    // Persistent data in <repo>/.stack, unlike with-stack's throwaway dirs.
    stack = await startStack({ binaries: await ensureBinaries() });
  } catch (err) {
    console.error(`start-all: ${(err as Error).message}`);
    process.exit(1);
  }
}
const env = { ...process.env, ...stack?.env };

const apps: Record<string, string> = { gateway: 'gateway/server.ts', worker: 'worker/server.ts' };
if (existsSync(join(repoRoot, 'admin', 'server.ts'))) apps.admin = 'admin/server.ts';

const children = new Map<string, ChildProcess>();
let shuttingDown = false;

for (const [name, entry] of Object.entries(apps)) {
  const [cmd, argv] = withParentDeathSignal(process.execPath, [...NODE_FLAGS[name as keyof typeof NODE_FLAGS], '--import', 'tsx', entry]);
  const child = spawn(cmd, argv, {
    cwd: repoRoot,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Own process group: Ctrl-C reaches only us, and each app then gets
    // exactly one SIGTERM. Two signals make many servers skip their drain.
    detached: true,
  });
  children.set(name, child);
  prefixLines(child.stdout!, process.stdout, `[${name}] `);
  prefixLines(child.stderr!, process.stderr, `[${name}] `);
  child.once('error', (err) => console.error(`[start-all] ${name} could not start: ${err.message}`));
  child.once('exit', (code, signal) => {
    children.delete(name);
    if (shuttingDown) return;
    console.error(`[start-all] ${name} exited unexpectedly (${signal ?? `code ${code}`}); shutting down`);
    void shutdown(1);
  });
}

// If we die without a clean shutdown, don't leave the apps running.
process.once('exit', () => {
  for (const child of children.values()) if (child.pid) tryKill(-child.pid, 'SIGKILL');
});

const port = process.env.PORT || '8080';
console.log(`[start-all] gateway: ${process.env.PUBLIC_URL || `http://127.0.0.1:${port}`}`);
if (stack) console.log(`[start-all] stack env file: ${stack.envFile}`);
console.log('[start-all] Ctrl-C to stop');

onShutdownSignal((sig) => {
  console.error(`[start-all] ${sig}: stopping`);
  void shutdown(0);
});

async function shutdown(code: number): Promise<never> {
  if (!shuttingDown) {
    shuttingDown = true;
    const running = [...children.values()];
    for (const child of running) if (child.pid) tryKill(child.pid, 'SIGTERM');
    const exited = Promise.all(running.map((c) => (c.exitCode !== null || c.signalCode ? null : new Promise((r) => c.once('exit', r)))));
    const ac = new AbortController();
    const inTime = await Promise.race([exited.then(() => true), sleep(CHILD_STOP_TIMEOUT_MS, false, { signal: ac.signal })]);
    ac.abort();
    if (!inTime) {
      for (const [name, child] of children) {
        console.error(`[start-all] ${name} did not stop in ${CHILD_STOP_TIMEOUT_MS / 1000}s; killing it`);
        if (child.pid) tryKill(-child.pid, 'SIGKILL');
      }
    }
    // Stack last: the apps may still flush to Redis/Mongo/S3 while draining.
    await stack?.stop();
    process.exit(code);
  }
  return new Promise<never>(() => {});
}

function prefixLines(from: NodeJS.ReadableStream, to: NodeJS.WritableStream, prefix: string): void {
  createInterface({ input: from, crlfDelay: Infinity }).on('line', (line) => to.write(`${prefix}${line}\n`));
}

function tryKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}
