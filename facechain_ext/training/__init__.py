"""Identity → face LoRA, host-free: the training service and what it publishes.

- `service.py`: `train_identity` (what the tab, the API and the CLI run inside a job), `TrainRequest`, name checks.
- `files.py`: the files the host reads (`<lora_dir>/FaceChain/<name>.safetensors` + `.json` + `.png`), written as one
  all-or-nothing set, and how to list them again.
- `validation.py`: best-snapshot choice by face similarity of validation portraits.

The LoRA format and the trainer core live in `facechain_ext.lora`; running a training inside the host (queue lock,
progress, the loaded checkpoint) lives in `facechain_ext.webui.training_worker`. Import the submodules directly.
"""
