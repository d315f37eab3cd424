// Every id that reaches a Redis key, a BullMQ job id or an object key passes through here first.
// The alphabet has no '.', ':' or '/', which is what lets the key builders below join ids
// with those characters without any chance of two different id tuples colliding.
export const ID_PATTERN = /^[0-9A-Za-z_-]{1,128}$/

export function isValidId(value: unknown): value is string {
  return typeof value === 'string' && ID_PATTERN.test(value)
}
