"""FaceChain for stable-diffusion-webui: identity portraits with the host's own model.

Importing this package is cheap: no torch, no models, no host modules. Heavy work starts on first use.
"""

__version__ = "0.1.0"
