// Request bodies shaped like the real RDToolkit client's, byte for byte (testing/fixtures/), for
// the tests, the fault suite and anyone trying the API by hand (README.md, "Setting up a device").
export const fixturesDir = new URL('./fixtures/', import.meta.url)
