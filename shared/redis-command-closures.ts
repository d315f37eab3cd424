// ioredis gives every command closures over the command itself: the promise's `resolve` and
// `reject` (two arrow functions made in the Promise executor), and, for a Lua script command
// (ours and all of BullMQ's), a `reject` wrapper made each time the command is written. Measured
// here (bench/README.md, "The gateway's young generation"): a command that holds such a closure
// outlives the next scavenge after its reply, although nothing reachable refers to it (a heap
// snapshot finds none), and with it its arguments (a session's whole job JSON) and the request
// awaiting it. In the gateway that was about a fifth of everything it allocates: copied,
// promoted, then left for a mark-compact about once a second, with 8-13 ms scavenge pauses at
// half of T1's rate and GC helper threads on the core that Redis needs. The same commands
// without the closures leave nothing behind.
//
// So commands get the same behaviour without them: the promise's own resolvers are kept on the
// command, and `resolve`, `reject` and the script's NOSCRIPT handling are shared functions that
// read what they need from the command. What ioredis does is unchanged: the argument transformer
// and stringification run once; `resolve` transforms the reply, clears the timers and sets
// `isResolved`/`isSettled`; a redirected command (cluster MOVED/ASK calls initPromise again)
// gets a fresh promise; a script is sent as EVAL the first time on a connection and as EVALSHA
// after, and a NOSCRIPT error forgets that the connection had it. Commands with a node-style
// callback or a friendly error stack keep ioredis's original code (nothing here uses either).
//
// Left as it is: Redis Cluster's client wraps each command's `reject` in a closure of its own
// (for redirections), so on a cluster the commands still carry one.
import { Command, Redis } from 'ioredis'

interface PatchedCommand {
  name: string
  args: unknown[]
  callback?: unknown
  errorStack?: unknown
  transformed: boolean
  isResolved: boolean
  isSettled: boolean
  promise: Promise<unknown>
  resolve: (value: unknown) => Promise<unknown>
  reject: (err: Error) => void
  stringifyArguments(): void
  transformReply(value: unknown): unknown
  toWritable(socket: object): string | Buffer
  _clearTimers(): void
  // Kept by this module:
  settle?: (value: unknown) => void
  fail?: (err: Error) => void
  /** The `reject` this script command had before it was written (ioredis's, or a cluster's wrapper). */
  rejectBeforeScript?: (err: Error) => void
  /** The connection this script command was last written on, and its script's set of connections that have it. */
  scriptSocket?: object
  scriptLoadedOn?: WeakSet<object>
}

const proto = Command.prototype as unknown as PatchedCommand & { initPromise(): void }
const transformers = (Command as unknown as { _transformer: { argument: Record<string, ((args: unknown[]) => unknown[]) | undefined> } })
  ._transformer
const originalInitPromise = proto.initPromise

/** ioredis's `_convertValue(resolve)` closure, as one shared function. */
function resolveCommand(this: PatchedCommand, value: unknown): Promise<unknown> {
  try {
    this._clearTimers()
    this.settle!(this.transformReply(value))
    this.isResolved = true
    this.isSettled = true
  } catch (err) {
    this.reject(err as Error)
  }
  return this.promise
}

/** ioredis's per-command reject closure (without its friendly-stack branch), as one shared function. */
function rejectCommand(this: PatchedCommand, err: Error): void {
  this._clearTimers()
  this.isSettled = true
  this.fail!(err)
}

/**
 * Promise.withResolvers() (ES2024, in Node 22+; this project's TypeScript lib is ES2022): its
 * executor closes over nothing but the two resolvers.
 */
function withResolvers() {
  let resolve!: (value: unknown) => void
  let reject!: (err: Error) => void
  const promise = new Promise<unknown>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

proto.initPromise = function initPromise(this: PatchedCommand): void {
  if (this.callback || this.errorStack) return originalInitPromise.call(this)
  this.isResolved = false
  this.isSettled = false
  if (!this.transformed) {
    this.transformed = true
    const transformer = transformers.argument[this.name]
    if (transformer) this.args = transformer(this.args)
    this.stringifyArguments()
  }
  const { promise, resolve, reject } = withResolvers()
  this.settle = resolve
  this.fail = reject
  // Own properties, as ioredis sets them (others wrap `reject` by reassigning it), but the same
  // two functions for every command instead of two new closures each.
  this.resolve = resolveCommand
  this.reject = rejectCommand
  this.promise = promise
}

/** The script command's NOSCRIPT handling (ioredis wraps `reject` in a closure for it), as one shared function. */
function rejectScriptCommand(this: PatchedCommand, err: Error): void {
  if (err.message.indexOf('NOSCRIPT') !== -1 && this.scriptSocket) this.scriptLoadedOn?.delete(this.scriptSocket)
  this.rejectBeforeScript!.call(this, err)
}

interface DefinedScript {
  lua: string
  sha: string
  Command: { prototype: PatchedCommand }
}

/** Replaces a script's command class's toWritable with ioredis's logic, minus the closure. */
function patchScript(script: DefinedScript): void {
  const loadedOn = new WeakSet<object>()
  const { lua, sha } = script
  script.Command.prototype.toWritable = function toWritable(this: PatchedCommand, socket: object) {
    // Written again (a resend after reconnecting, a redirection): the wrapper is already in place.
    if (this.reject !== rejectScriptCommand) {
      this.rejectBeforeScript = this.reject
      this.reject = rejectScriptCommand
    }
    this.scriptSocket = socket
    this.scriptLoadedOn = loadedOn
    if (!loadedOn.has(socket)) {
      loadedOn.add(socket)
      this.name = 'eval'
      this.args[0] = lua
    } else if (this.name === 'eval') {
      this.name = 'evalsha'
      this.args[0] = sha
    }
    return proto.toWritable.call(this, socket)
  }
}

// defineCommand lives on ioredis's Commander, the prototype that Redis, Cluster and Pipeline share.
let owner: object | null = Redis.prototype
while (owner && !Object.prototype.hasOwnProperty.call(owner, 'defineCommand')) owner = Object.getPrototypeOf(owner) as object | null
if (!owner) throw new Error('ioredis: defineCommand not found; shared/redis-command-closures.ts needs updating')
const commander = owner as { defineCommand(this: { scriptsSet: Record<string, DefinedScript> }, name: string, definition: unknown): void }
const originalDefineCommand = commander.defineCommand
commander.defineCommand = function defineCommand(name, definition) {
  originalDefineCommand.call(this, name, definition)
  patchScript(this.scriptsSet[name]!)
}
