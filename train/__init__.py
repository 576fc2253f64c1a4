"""train: LoRA/QLoRA fine-tunes (SFT, reward, DPO) that read curate exports."""
