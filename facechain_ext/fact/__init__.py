"""FaceChain-FACT: the train-free face adapter for SD1.x (host-free part).

TransFace ViT-S face encoder -> perceiver resampler (16 tokens x 768 per photo) -> a gated self-attention block
inserted in each of the 16 SD1.x transformer blocks. Nothing here imports the host; `attach.py` (the hook) does the
wiring into the host's UNet. Facts and their sources: /work/shared/FACECHAIN_FACTS.md §5 and modelscope/facechain
`face_adapter/` (face_adapter_v1.py, face_attention_processor_v1.py, vit.py).
"""
