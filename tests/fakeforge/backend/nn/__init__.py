"""Stand-in of Forge's backend/nn package (see tests/fakeforge/README.md)."""
