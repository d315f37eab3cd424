// What a token may upload. On its own so that the MongoDB document shapes (mongo.ts) and the
// token mirror (token-registry.ts) can both name it without importing each other.

export const PERMISSIONS = ['test_session', 'logs', 'media'] as const
export type Permission = (typeof PERMISSIONS)[number]
