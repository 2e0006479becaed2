//! The `herald-tests` package holds no library code: its tests (`interop.rs`, …) exercise the
//! crates together and against clients written by others.
