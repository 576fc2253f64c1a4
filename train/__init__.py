"""train: LoRA/QLoRA fine-tunes (SFT, reward, DPO) that read curate exports."""

import logging

# bitsandbytes warns at import time, on every CPU without the optional `kernels` package, about a
# CPU 4-bit kernel that train never uses there (4-bit needs a CUDA GPU): keep its errors only.
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
