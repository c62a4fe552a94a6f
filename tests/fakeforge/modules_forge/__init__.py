"""Stand-in of Forge's `modules_forge` package: its presence is how FaceChain detects Forge (HOST_CONTRACT §9)."""
