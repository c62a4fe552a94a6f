"""The only file the webui loads from this extension (see HOST_CONTRACT.md §1).

It runs with the extension root on sys.path, imports our uniquely named package and registers callbacks.
Everything else lives in `facechain_ext`.
"""

from facechain_ext.webui import register
from facechain_ext.webui.script import FaceChainScript  # the host registers Script subclasses found in this file

FaceChainScript.bind_context(register().ctx)  # the accordion shares the extension's context (models load once)
