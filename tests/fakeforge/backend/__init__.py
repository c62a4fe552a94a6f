"""Stand-in of Forge's `backend` package (tests only; see ../README.md)."""
