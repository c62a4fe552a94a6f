"""Test stand-in for the `modules` package of AUTOMATIC1111 stable-diffusion-webui 1.10 (see tests/fakehost/README.md)."""
