"""Stand-in of Forge's backend/patcher package (see tests/fakeforge/README.md)."""
