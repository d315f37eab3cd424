// Node/V8 flags each process runs with in production. compose.yaml and the Dockerfile spell them
// out (test/node-flags.test.ts keeps them equal to this list); `npm start` and `npm run bench`
// read them from here.
//
// The gateway keeps a larger young generation: it allocates a few short-lived objects per request
// and keeps almost none, so fewer scavenges buy throughput (figures: bench/README.md).
export const NODE_FLAGS = {
  gateway: ['--max-semi-space-size=64'],
  worker: [] as string[],
  admin: [] as string[],
} as const
