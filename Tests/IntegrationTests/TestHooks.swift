// Whether the meshqd under test has its test-only fault switches
// (MESHQ_TEST_CUT_PEERS, MESHQ_TEST_DISK_FAULT): they are compiled only with
// -D MESHQ_TESTING, as `make test` builds. Tests that need them are skipped
// otherwise, with the reason.
#if MESHQ_TESTING
let testHooksCompiled = true
#else
let testHooksCompiled = false
#endif
let needsTestHooks = "needs meshqd built with -D MESHQ_TESTING (make test)"
