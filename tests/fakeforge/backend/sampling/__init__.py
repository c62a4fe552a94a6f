"""Stand-in of Forge's backend/sampling package (see tests/fakeforge/README.md)."""
