// ioredis's `commandTimeout` starts a timer when a command is sent and fails the command when it
// fires. Node runs due timers before it reads sockets, so after the event loop was busy for longer
// than the timeout (a burst of connections on a starved CPU, a long GC pause), a command Redis
// answered in microseconds is failed as "Command timed out" while its reply waits unread in the
// socket: the gateway then answers 503 "queue is unavailable" for a Redis that never was.
//
// The verdict is therefore deferred by one setImmediate: immediates run after the poll phase of
// the same loop iteration, by which time every reply already received has been read. A Redis that
// really does not answer still fails the command, one loop iteration later.
import { Command } from 'ioredis'

interface TimedCommand {
  _commandTimeoutTimer?: NodeJS.Timeout
  isSettled?: boolean
  reject: (err: Error) => void
}

const proto = Command.prototype as unknown as TimedCommand & { setTimeout(ms: number): void }

proto.setTimeout = function setTimeout(this: TimedCommand, ms: number): void {
  if (this._commandTimeoutTimer) return
  // Kept in the same field as ioredis's own timer, so that its _clearTimers() still cancels it
  // once the reply is read (an immediate already scheduled finds the command settled).
  this._commandTimeoutTimer = globalThis.setTimeout(() => {
    setImmediate(() => {
      if (!this.isSettled) this.reject(new Error('Command timed out'))
    })
  }, ms)
}
