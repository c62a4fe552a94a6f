"""Stand-in of the host package `modules.api` (see tests/fakehost/README.md)."""
