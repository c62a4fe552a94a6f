"""Template portraits: put one or more people into a chosen photo (FaceChain's fixed-template inpainting mode).

Host-independent core (no `modules`, no gradio): `faces` (faces of the template, left to right, numbered overlay),
`masks` (FaceChain's grown face region, feathered), `plan` (which face gets whom, checked), `compose` (a pass's
output back into the template, pixels outside the mask untouched), `guidance` (FaceChain's ControlNet recipe),
`run` (the job object, fusion + scoring per replaced face, ranking by the mean), `request` (arguments and answers).
The host glue is `facechain_ext/webui/template_runner.py` (passes through the host's img2img inpainting),
`webui/controlnet.py`, `webui/api_templates.py` and `webui/tab_templates.py`.
"""
