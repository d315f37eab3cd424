// Node/V8 flags each process runs with in production. compose.yaml and the Dockerfile spell them
// out (test/node-flags.test.ts keeps them equal to this list); `npm start` and `npm run bench`
// read them from here.
//
// The gateway allocates a few short-lived objects per request (the body's bytes and text, the
// job's JSON, ioredis commands) and keeps almost none, so its young generation fills fast: with
// V8's default 16 MB semi-space it spent ~6% of its time scavenging. 64 MB means 4x fewer
// scavenges, each no slower (a scavenge costs what survives, not what died). Measured by
// `npm run bench` here: +20% accepted session PUTs/s (gateway CPU per accept 202 -> 158 us), +20%
// 409s/s, no change in idle RSS or in the RSS growth during 32 concurrent 5 MB uploads (the space
// is committed only as it fills); the price is ~40 MB more peak RSS under a saturating burst
// (254 -> 293 MB with 1,000 requests in flight).
export const NODE_FLAGS = {
  gateway: ['--max-semi-space-size=64'],
  worker: [] as string[],
  admin: [] as string[],
} as const
