// The target that owns the suites' precompiled header (tests/CMakeLists.txt): it compiles nothing of
// its own; the header is built once with the suites' flags and every suite reuses it.
