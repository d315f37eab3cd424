// `admin create|disable|reset-password|list|grant|revoke|superadmin`: the admin panel's users and their roles.
import { grantRole, listAdmins, revokeRole, setSuperadmin, type MembershipChange } from '../tokens/roles.ts'
import { createAdminUser, disableAdminUser, resetAdminPassword } from '../tokens/users.ts'
import { adminTable } from './format.ts'
import { option, print, type CommandContext, type CommandHandlers } from './io.ts'
import { readAdminPassword } from './password-prompt.ts'

/** A no-echo prompt, or stdin with --password-stdin (tests pass their own reader). */
const readPassword = (cx: CommandContext): Promise<string> =>
  (cx.io.readPassword ?? readAdminPassword)(cx.cmd.values['password-stdin'] === true)

const was = (r: MembershipChange): string => (r.previous_role === null ? 'had no role there' : `was ${r.previous_role}`)

export const adminCommands: CommandHandlers<
  'admin create' | 'admin disable' | 'admin reset-password' | 'admin list' | 'admin grant' | 'admin revoke' | 'admin superadmin'
> = {
  'admin create': async (cx) => {
    const password = await readPassword(cx)
    const user = await createAdminUser(cx.db, cx.cmd.args.email!, password, cx.actor)
    const rights = user.superadmin ? 'As the first admin, they are a superadmin.' : 'They have no role yet: give one with `admin grant`.'
    print(cx, user, `Admin "${user.email}" created; they can log in to the admin panel now. ${rights}\n`)
  },
  'admin list': async (cx) => {
    const list = await listAdmins(cx.db)
    print(cx, list, adminTable(list))
  },
  'admin grant': async (cx) => {
    const res = await grantRole(cx.db, cx.cmd.args.email!, option(cx.cmd, 'workspace')!, option(cx.cmd, 'role')!, cx.actor)
    print(cx, res, `"${res.email}" is now ${res.role} of workspace "${res.slug}" (${was(res)}).\n`)
  },
  'admin revoke': async (cx) => {
    const res = await revokeRole(cx.db, cx.cmd.args.email!, option(cx.cmd, 'workspace')!, cx.actor)
    print(cx, res, `"${res.email}" has no role in workspace "${res.slug}" now (${was(res)}).\n`)
  },
  'admin superadmin': async (cx) => {
    const res = await setSuperadmin(cx.db, cx.cmd.args.email!, cx.cmd.args.state === 'on', cx.actor)
    const state = res.superadmin ? 'a superadmin' : 'not a superadmin'
    print(cx, res, `"${res.email}" is ${res.changed ? 'now' : 'already'} ${state}.\n`)
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
