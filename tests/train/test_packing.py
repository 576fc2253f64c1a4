"""Packed training computes what unpacked training computes (train/speed.py's fast path).

A packed row (TRL's best-fit packing + padding-free collator) goes through the attention `train sft` uses when
packing (`curatrain_varlen`): each sequence must see only itself, with positions restarting, so every sequence's
loss equals its loss trained alone. On CPU the varlen attention runs SDPA per sequence; the GPU test compares
PyTorch's flash varlen kernel with it, and Liger's kernels with the plain model, on the first training steps.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from train.speed import VARLEN, register_varlen_attention

LENGTHS = [7, 19, 4, 12, 30]  # tokens per example; the row packs them all


def tiny_llama(attention: str, seed: int = 0, device: str = "cpu", dtype: torch.dtype = torch.float32) -> Any:
    """2 layers, grouped-query attention (4 query heads, 2 key/value heads), random weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    register_varlen_attention()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=97,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        attn_implementation=attention,
    )
    return LlamaForCausalLM(config).to(device=device, dtype=dtype).eval()


def examples(seed: int = 1) -> list[dict[str, list[int]]]:
    """Examples as `train sft` hands them to TRL: token ids and a completion mask (loss on the second half)."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for n in LENGTHS:
        ids = torch.randint(3, 97, (n,), generator=gen).tolist()
        rows.append({"input_ids": ids, "completion_mask": [0] * (n // 2) + [1] * (n - n // 2)})
    return rows


def packed_batch(rows: list[dict[str, list[int]]]) -> dict[str, Any]:
    """The batch TRL's trainer builds for a packed dataset: bfd packing, then the padding-free collator."""
    from datasets import Dataset
    from trl.data_utils import pack_dataset
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    packed = pack_dataset(Dataset.from_list(rows), seq_length=128, strategy="bfd")
    assert len(packed) == 1  # one row holds every example
    labelled = [
        {**r, "labels": [i if m else -100 for i, m in zip(r["input_ids"], r["completion_mask"], strict=True)]}
        for r in packed
    ]
    collator = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)
    return collator([{k: v for k, v in r.items() if k != "completion_mask"} for r in labelled])


def token_losses(model: Any, batch: dict[str, Any]) -> torch.Tensor:
    """Next-token loss at every position (0 where the label is -100)."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs, use_cache=False).logits[0, :-1].float()  # use_cache=False: as TRL's trainer calls it
    labels = batch["labels"][0, 1:]
    losses = torch.nn.functional.cross_entropy(logits, labels.clamp(min=0), reduction="none")
    return losses * (labels != -100)


def per_sequence_losses(model: Any, batch: dict[str, Any]) -> list[float]:
    """Mean loss of each sequence of a packed row (position t's loss predicts token t+1)."""
    losses = token_losses(model, batch)
    starts = batch["cu_seq_lens_q"].tolist()
    labels = batch["labels"][0]
    out = []
    for s, e in zip(starts[:-1], starts[1:], strict=True):
        mask = labels[s + 1 : e] != -100
        out.append(float(losses[s : e - 1].sum() / mask.sum()))
    return out


def alone_losses(model: Any, rows: list[dict[str, list[int]]], order: list[list[int]]) -> list[float]:
    """Each example's mean completion loss, trained on by itself (batch of one, no padding)."""
    by_ids = {tuple(r["input_ids"]): r for r in rows}
    out = []
    for ids in order:
        row = by_ids[tuple(ids)]
        labels = [i if m else -100 for i, m in zip(row["input_ids"], row["completion_mask"], strict=True)]
        batch = {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels])}
        out.append(float(token_losses(model, batch).sum() / sum(m for m in row["completion_mask"][1:])))
    return out


def sequences_of(batch: dict[str, Any]) -> list[list[int]]:
    starts = batch["cu_seq_lens_q"].tolist()
    ids = batch["input_ids"][0].tolist()
    return [ids[s:e] for s, e in zip(starts[:-1], starts[1:], strict=True)]


@pytest.mark.parametrize("attention", [VARLEN, "sdpa"])
def test_packed_row_gives_every_sequence_its_unpacked_loss(attention: str) -> None:
    rows = examples()
    batch = packed_batch(rows)
    assert batch["position_ids"][0].tolist().count(0) == len(LENGTHS)  # positions restart per sequence
    model = tiny_llama(attention)
    with torch.no_grad():
        packed = per_sequence_losses(model, batch)
        alone = alone_losses(tiny_llama("sdpa"), rows, sequences_of(batch))
    assert packed == pytest.approx(alone, rel=1e-5, abs=1e-5)


def test_the_comparison_catches_attention_across_sequences() -> None:
    """The same row without its boundaries (one causal sequence) gives other losses: the test above can fail."""
    rows = examples()
    batch = packed_batch(rows)
    leaky = {"input_ids": batch["input_ids"], "labels": batch["labels"]}  # no position_ids, no cu_seq_lens
    model = tiny_llama(VARLEN)
    with torch.no_grad():
        alone = alone_losses(model, rows, sequences_of(batch))
        losses = token_losses(model, leaky)
    starts = batch["cu_seq_lens_q"].tolist()
    later = [float(losses[s : e - 1].sum()) for s, e in zip(starts[1:-1], starts[2:], strict=True)]
    assert any(abs(a) > 0 for a in later)
    assert per_sequence_from(losses, batch)[1:] != pytest.approx(alone[1:], rel=1e-3)


def per_sequence_from(losses: torch.Tensor, batch: dict[str, Any]) -> list[float]:
    starts = batch["cu_seq_lens_q"].tolist()
    labels = batch["labels"][0]
    return [
        float(losses[s : e - 1].sum() / (labels[s + 1 : e] != -100).sum())
        for s, e in zip(starts[:-1], starts[1:], strict=True)
    ]


def test_gradients_match_between_packed_and_unpacked() -> None:
    """The training signal, not only the forward: summed-loss gradients agree."""
    rows = examples()
    batch = packed_batch(rows)
    packed_model, alone_model = tiny_llama(VARLEN), tiny_llama("sdpa")
    token_losses(packed_model, batch).sum().backward()
    for ids in sequences_of(batch):
        row = next(r for r in rows if r["input_ids"] == ids)
        labels = [i if m else -100 for i, m in zip(ids, row["completion_mask"], strict=True)]
        token_losses(alone_model, {"input_ids": torch.tensor([ids]), "labels": torch.tensor([labels])}).sum().backward()
    for (name, a), b in zip(packed_model.named_parameters(), alone_model.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-6), name


# -- on a GPU: the flash varlen kernel and Liger's kernels -------------------------------------------

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.gpu
@gpu
def test_flash_varlen_kernel_matches_sdpa_per_sequence() -> None:
    from train.speed import flash_varlen, sdpa_per_sequence, varlen_kernel

    assert varlen_kernel() is not None, "torch.nn.attention.varlen is missing: the fast path falls back to SDPA"
    torch.manual_seed(0)
    cu = torch.tensor([0, 100, 1300, 1301, 2048], dtype=torch.int32, device="cuda")
    q = torch.randn(2048, 32, 64, device="cuda", dtype=torch.bfloat16)
    k, v = (torch.randn(2048, 8, 64, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    fast = flash_varlen(q, k, v, cu, 1200, 0.125).float()
    ref = sdpa_per_sequence(q.double(), k.double(), v.double(), cu.cpu(), 0.125, 0.0).float()
    assert float((fast - ref).norm() / ref.norm()) < 1e-2


@pytest.mark.gpu
@gpu
def test_fast_path_matches_the_plain_loss_on_the_first_steps(tmp_path: Any) -> None:
    """SFTTrainer with the fast path (packing, varlen flash, Liger, bf16 adapters) against plain TRL (padded, SDPA):
    the same examples give the same losses over the first steps (bf16: within 2%)."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from trl import SFTConfig, SFTTrainer

    from train.speed import adapters_to_bf16, liger_installed

    pytest.importorskip("liger_kernel")
    assert liger_installed()
    from reward_fixtures import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.save_pretrained(tmp_path / "tok")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "tok")
    gen = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(64):
        n = int(torch.randint(8, 120, (1,), generator=gen))
        ids = torch.randint(2, len(tokenizer), (n,), generator=gen).tolist()
        rows.append({"input_ids": ids, "completion_mask": [0] * (n // 3) + [1] * (n - n // 3)})
    losses = {}
    for name, fast in (("plain", False), ("fast", True)):
        register_varlen_attention()
        torch.manual_seed(0)
        config = LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=256, intermediate_size=512, num_hidden_layers=2,
            num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=256,
            attn_implementation=VARLEN if fast else "sdpa",
        )  # fmt: skip
        model = LlamaForCausalLM(config).to("cuda", torch.bfloat16)
        args = SFTConfig(
            output_dir=str(tmp_path / name), max_steps=4, per_device_train_batch_size=64, learning_rate=1e-3,
            logging_steps=1, report_to="none", bf16=True, packing=fast, max_length=256, seed=0,
            use_liger_kernel=fast, liger_kernel_config={"fused_linear_cross_entropy": False} if fast else None,
            completion_only_loss=True, save_strategy="no", lr_scheduler_type="constant",
        )  # fmt: skip
        peft = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", lora_dropout=0.0, task_type="CAUSAL_LM")
        trainer = SFTTrainer(
            model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer, peft_config=peft
        )
        if fast:
            adapters_to_bf16(trainer.model)
        trainer.train()
        losses[name] = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert len(losses["fast"]) == 4
    assert losses["fast"] == pytest.approx(losses["plain"], rel=0.02)


# -- the fast path's defaults and its wiring into `train sft` (CPU) ---------------------------------------------


def test_fast_path_is_on_with_a_gpu_and_off_without(monkeypatch: pytest.MonkeyPatch) -> None:
    import train.speed as speed
    from train.config import SFTRecipe, load_recipe

    recipe = load_recipe(SFTRecipe, None, {"model.dtype": "bf16"})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert speed.fast_path(recipe) == speed.FastPath(False, "sdpa", False, False, False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(speed, "liger_installed", lambda: True)
    assert speed.fast_path(recipe) == speed.FastPath(True, VARLEN, True, True, False)
    assert not speed.fast_path(recipe, packs=False).packing  # verbs whose rows are not packed (reward)
    off = load_recipe(SFTRecipe, None, {"dataset.packing": False, "speed.liger_kernels": False, "model.dtype": "fp32"})
    assert speed.fast_path(off) == speed.FastPath(False, "sdpa", False, False, False)


def test_packed_rows_hold_the_tokens_of_an_unpacked_batch() -> None:
    from train.config import SFTRecipe, load_recipe
    from train.speed import packed_rows

    recipe = load_recipe(SFTRecipe, None, {"training.batch_size": 8})
    assert packed_rows(recipe, mean_tokens=500, max_length=2048) == 2  # 4,000 tokens -> 2 rows of 2,048
    assert packed_rows(recipe, mean_tokens=20, max_length=2048) == 1
    wide = load_recipe(SFTRecipe, None, {"speed.tokens_per_step": 16384})
    assert packed_rows(wide, mean_tokens=500, max_length=2048) == 8


def test_sft_with_packing_feeds_the_trainer_padding_free_rows(
    tiny_lm: Any, latex_export: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`train sft dataset.packing=true` on CPU: TRL packs, the model attends per sequence (curatrain_varlen), the
    batch is one padding-free row whose sequences are whole examples, and the run card records the fast path."""
    import train.sft as sft
    from train.card import read_run_card
    from train.config import SFTRecipe, load_recipe

    keys = {
        "model.name": str(tiny_lm), "dataset.path": str(latex_export), "logging.output_dir": str(tmp_path / "run"),
        "dataset.packing": True, "training.max_steps": 2, "training.batch_size": 8, "training.eval_each_epoch": False,
        "training.save_each_epoch": False, "memory.gradient_checkpointing": False, "generation.samples": 0,
    }  # fmt: skip
    seen: dict[str, Any] = {}
    original = sft.train_and_evaluate

    def capture(trainer: Any, *args: Any) -> Any:
        seen["batch"] = next(iter(trainer.get_train_dataloader()))
        seen["attention"] = trainer.model.config._attn_implementation
        return original(trainer, *args)

    monkeypatch.setattr(sft, "train_and_evaluate", capture)
    card = read_run_card(sft.run_sft(load_recipe(SFTRecipe, None, keys), quiet=True))
    batch = seen["batch"]
    assert seen["attention"] == VARLEN and "attention_mask" not in batch and batch["input_ids"].shape[0] == 1
    cu = batch["cu_seq_lens_q"].tolist()
    assert len(cu) > 2 and batch["position_ids"][0].tolist().count(0) == len(cu) - 1  # positions restart per example
    ids = batch["input_ids"][0].tolist()
    assert card["fast_path"]["packing"] and card["fast_path"]["attention"] == VARLEN
    assert card["metrics"]["global_step"] == 2 and card["fast_path"]["packed_rows_per_step"] >= 1
    assert all(b - a > 1 for a, b in zip(cu[:-1], cu[1:], strict=True)) and len(ids) == cu[-1]  # no padding
