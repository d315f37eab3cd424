// `admin create|disable|reset-password`: the admin panel's users.
import { createAdminUser, disableAdminUser, resetAdminPassword } from '../tokens/users.ts'
import { print, type CommandContext, type CommandHandlers } from './io.ts'
import { readAdminPassword } from './password-prompt.ts'

/** A no-echo prompt, or stdin with --password-stdin (tests pass their own reader). */
const readPassword = (cx: CommandContext): Promise<string> =>
  (cx.io.readPassword ?? readAdminPassword)(cx.cmd.values['password-stdin'] === true)

export const adminCommands: CommandHandlers<'admin create' | 'admin disable' | 'admin reset-password'> = {
  'admin create': async (cx) => {
    const password = await readPassword(cx)
    const user = await createAdminUser(cx.db, cx.cmd.args.email!, password, cx.actor)
    print(cx, user, `Admin "${user.email}" created; they can log in to the admin panel now.\n`)
  },
  'admin disable': async (cx) => {
    const res = await disableAdminUser(cx.db, cx.cmd.args.email!, cx.actor)
    print(
      cx,
      res,
      `Admin "${res.email}" ${res.already_disabled ? 'was already disabled' : 'disabled'}; ${res.sessions_ended} session(s) ended.\n`,
    )
  },
  'admin reset-password': async (cx) => {
    const password = await readPassword(cx)
    const res = await resetAdminPassword(cx.db, cx.cmd.args.email!, password, cx.actor)
    const human =
      `Password of "${res.email}" reset; ${res.sessions_ended} session(s) ended.\n` +
      (res.disabled ? 'The account is disabled: it cannot log in until it is enabled again.\n' : '')
    print(cx, res, human)
  },
}
