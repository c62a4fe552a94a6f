"""Stand-in of Forge's backend/modules package (see tests/fakeforge/README.md)."""
