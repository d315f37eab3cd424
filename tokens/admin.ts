// Workspace and token administration, as one object for the admin panel and the CLI: the
// actions of workspaces.ts, tokens.ts and rotation.ts bound to one context (context.ts).
//
// This module does no console I/O and never returns a token hash; a token itself is returned
// exactly once, by createToken (and by rotateToken, for the new token).
import { tokenAdminContext, type TokenAdminContext, type TokenAdminDeps } from './context.ts'
import { setWorkspaceRetention } from './retention.ts'
import { rotateToken } from './rotation.ts'
import { createToken, listTokens, revokeToken } from './tokens.ts'
import { finishShardMove, moveWorkspaceShard } from './shards.ts'
import { createWorkspace, getWorkspace, listWorkspaces, renameWorkspace, setWorkspaceActive, setWorkspaceRateLimit } from './workspaces.ts'

type Action<A extends unknown[], R> = (ctx: TokenAdminContext, ...args: A) => R
const bind =
  <A extends unknown[], R>(ctx: TokenAdminContext, fn: Action<A, R>) =>
  (...args: A): R =>
    fn(ctx, ...args)

export function createTokenAdmin(deps: TokenAdminDeps) {
  const ctx = tokenAdminContext(deps)
  return {
    createWorkspace: bind(ctx, createWorkspace),
    listWorkspaces: bind(ctx, listWorkspaces),
    getWorkspace: bind(ctx, getWorkspace),
    setWorkspaceActive: bind(ctx, setWorkspaceActive),
    setWorkspaceRateLimit: bind(ctx, setWorkspaceRateLimit),
    setWorkspaceRetention: bind(ctx, setWorkspaceRetention),
    renameWorkspace: bind(ctx, renameWorkspace),
    moveWorkspaceShard: bind(ctx, moveWorkspaceShard),
    finishShardMove: bind(ctx, finishShardMove),
    createToken: bind(ctx, createToken),
    listTokens: bind(ctx, listTokens),
    revokeToken: bind(ctx, revokeToken),
    rotateToken: bind(ctx, rotateToken),
  }
}

export type TokenAdmin = ReturnType<typeof createTokenAdmin>
