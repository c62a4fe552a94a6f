"""Stand-in of Forge's backend/diffusion_engine package (see tests/fakeforge/README.md)."""
