//! End-to-end tests live in tests/tests/*.rs; interop tests with real clients in tests/interop/.
