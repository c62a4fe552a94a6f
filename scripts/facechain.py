"""The only file the webui loads from this extension (see HOST_CONTRACT.md §1).

It runs with the extension root on sys.path, imports our uniquely named package and registers callbacks.
Everything else lives in `facechain_ext`.
"""

from facechain_ext.webui import register
from facechain_ext.webui.script import script_class_for

# The host registers Script subclasses found in this file's namespace; this one shares the extension's context.
FaceChainScript = script_class_for(register().ctx)
