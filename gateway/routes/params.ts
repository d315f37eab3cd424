import { isValidId } from '../../shared/ids.ts'
import { HttpError } from '../errors.ts'

/** Path ids other than the DSN (which is checked by authentication) must be valid ids, or 400. */
export function validIds<T extends Record<string, string>>(params: T): T {
  for (const [name, value] of Object.entries(params)) {
    if (name !== 'dsn' && !isValidId(value)) {
      throw new HttpError(400, 'invalid_id', `${name} must match [0-9A-Za-z_-]{1,128}`)
    }
  }
  return params
}
