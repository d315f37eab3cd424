// One base for every error this project throws on purpose. Callers decide on `code` (stable,
// machine-readable, safe to log and to put in a JSON answer) or on the class, never on the message,
// which is for people and may be reworded. The `name` is the class name, so logs say what was thrown.
// Errors from libraries keep their own classes; the one adapter that reads their text is
// shared/redis.ts (`redisErrorCode`), because ioredis and Redis give some failures no code.

export abstract class AppError extends Error {
  abstract readonly code: string

  constructor(message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
  }
}

/** True for an AppError carrying this code. */
export function hasCode(err: unknown, code: string): boolean {
  return err instanceof AppError && err.code === code
}
