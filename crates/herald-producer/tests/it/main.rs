//! Integration tests of the event producer against the real broker and registry.
