"""`train ppo`: stage (c) of docs/design.md workflow 3 — push an SFT policy toward answers a reward run scores high.

Why this loop is ours: TRL 1.16 ships no PPO trainer (PPOTrainer was removed, `trl.experimental` included),
and the front ends that still offer PPO pin TRL <= 0.24, which does not run on transformers 5. So here is
PPO as InstructGPT (Ouyang et al. 2022) and TRL's PPOTrainer ran it, on torch + PEFT, read top to bottom:

  one step = rollout -> rewards -> advantages -> a few epochs of clipped updates -> KL coefficient update
  1. rollout: sample answers to `ppo.rollout_batch_size` prompts (`sampling.*`); log-probs and values of the
     policy (LoRA adapter on), log-probs of the reference (the policy as it started: adapter off, or the
     frozen copy of the SFT run's adapter) and the reward run's score of each whole answer;
  2. rewards per answer token: −β·(log π − log π_ref), plus the score at the answer's last token;
  3. advantages by GAE(γ, λ) on the value head's estimates; returns = advantages + values; advantages
     whitened over the batch;
  4. `ppo.ppo_epochs` passes over the batch in minibatches of `training.batch_size`:
     loss = clipped policy loss + vf_coef × clipped value loss;
  5. β follows the adaptive controller of Ziegler et al. (2019) toward `ppo.target_kl` nats per answer.
The value head is one linear layer on the policy's last hidden state (a shared trunk, as in TRL's
AutoModelForCausalLMWithValueHead). Each loss term is a small function below, tested against hand
computations (tests/train/test_ppo.py). The run directory, checkpoints, resume and run card are the
shared run layer's (train/run.py); the degeneration check and collapse guard are train/alignment.py's.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import Field

from curate.config import Flag
from curate.errors import CurateError
from train import options
from train.alignment import (
    ALIGNMENT_FLAGS,
    ONLINE_FLAGS,
    AlignmentRecipe,
    AlignmentRun,
    Degeneration,
    RewardModel,
    SamplingSection,
    Scorer,
    add_reference_adapter,
    alignment_card,
    alignment_finish,
    decode_answers,
    generate,
    heldout_check,
    load_policy,
    online_inputs,
    reference,
)
from train.config import _Section
from train.run import RunMeter, Trained, open_run, run_dir_for, throughput, training_arguments

VALUE_HEAD = "value_head.safetensors"


class PPOSection(_Section):
    """PPO's own settings (defaults: TRL's PPOConfig / InstructGPT)."""

    rollout_batch_size: int = Field(default=16, ge=1, description="Prompts answered per PPO step.")
    ppo_epochs: int = Field(default=4, ge=1, description="Optimisation passes over each rollout batch.")
    clip_range: float = Field(default=0.2, gt=0.0, description="ε: the policy ratio is clipped to [1−ε, 1+ε].")
    clip_range_value: float = Field(default=0.2, gt=0.0, description="Values may move this far from the rollout's.")
    vf_coef: float = Field(default=0.1, ge=0.0, description="Weight of the value loss.")
    gamma: float = Field(default=1.0, gt=0.0, le=1.0, description="Discount γ of GAE.")
    lam: float = Field(default=0.95, ge=0.0, le=1.0, description="λ of GAE.")
    kl_coef: float = Field(default=0.2, ge=0.0, description="β: KL penalty per answer token (its start, if adaptive).")
    adaptive_kl: bool = Field(default=True, description="Move β toward target_kl (Ziegler et al. 2019).")
    target_kl: float = Field(default=6.0, gt=0.0, description="Adaptive β's target: KL in nats per answer.")
    kl_horizon: int = Field(default=10000, ge=1, description="Adaptive β's horizon, in answers.")


class PPORecipe(AlignmentRecipe):
    """`train ppo`: an SFT policy, a reward run, an export's prompts."""

    ppo: PPOSection = Field(default_factory=PPOSection)
    sampling: SamplingSection = Field(default_factory=SamplingSection)


# -- the loss terms (each tested against a hand computation) --------------------------------------


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `x` over the positions where `mask` is 1."""
    return (x * mask).sum() / mask.sum().clamp(min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(x − mean) / std over the masked positions (unbiased variance); the mean is kept when `shift_mean` is False."""
    mean = masked_mean(x, mask)
    n = mask.sum()
    var = masked_mean((x - mean) ** 2, mask) * n / (n - 1).clamp(min=1)
    whitened = (x - mean) * torch.rsqrt(var + 1e-8)
    return (whitened if shift_mean else whitened + mean) * mask


def kl_penalized_rewards(
    scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards −β·(log π − log π_ref), + the answer's score at its last token; and the per-token KL."""
    kl = (logprobs - ref_logprobs) * mask
    rewards = -kl_coef * kl
    last = mask.sum(1).long() - 1  # answers are contiguous from position 0
    rewards[torch.arange(len(scores)), last] += scores
    return rewards, kl


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation: A_t = Σ_k (γλ)^k δ_{t+k}, δ_t = r_t + γ V_{t+1} − V_t; returns A + V."""
    values, rewards = values * mask, rewards * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        next_value = values[:, t + 1] if t + 1 < rewards.shape[1] else 0.0
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    return advantages, advantages + values


def policy_loss(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped surrogate max(−A·ρ, −A·clip(ρ, 1−ε, 1+ε)), ρ = π/π_old, masked mean; and the share of clipped tokens."""
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    return masked_mean(torch.max(unclipped, clipped), mask), masked_mean((clipped > unclipped).float(), mask)


def value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, clip: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """½·max((V − R)², (V_clipped − R)²), V_clipped = V_old + clip(V − V_old, ±ε_v), masked mean; and the clipped share."""
    clipped_values = old_values + torch.clamp(values - old_values, -clip, clip)
    unclipped_error, clipped_error = (values - returns) ** 2, (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(unclipped_error, clipped_error), mask)
    return loss, masked_mean((clipped_error > unclipped_error).float(), mask)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of each position's next-token distribution: logsumexp(z) − Σ softmax(z)·z."""
    return torch.logsumexp(logits, -1) - (torch.softmax(logits, -1) * logits).sum(-1)


@dataclass
class AdaptiveKL:
    """β ← β·(1 + clip(KL/target − 1, ±0.2)·n/horizon) after each batch of n answers (fixed when not adaptive)."""

    value: float
    target: float
    horizon: int
    adaptive: bool = True

    def update(self, kl: float, n: int) -> None:
        if self.adaptive:
            error = min(max(kl / self.target - 1.0, -0.2), 0.2)
            self.value *= 1.0 + error * n / self.horizon


# -- the policy with its value head ---------------------------------------------------------------


def answer_logprobs_and_values(
    model: Any, head: torch.nn.Module, batch: dict[str, torch.Tensor], temperature: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-prob of each answer token, the value before it and the policy's logits there ([B, answer length])."""
    answer_len = batch["answer_ids"].shape[1]
    input_ids = torch.cat([batch["prompt_ids"], batch["answer_ids"]], 1)
    mask = torch.cat([batch["prompt_mask"], batch["answer_mask"]], 1)
    positions = (mask.cumsum(1) - 1).clamp(min=0)  # left padding: positions count real tokens, as generate() does
    out = model(
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=positions,
        output_hidden_states=True,
        logits_to_keep=answer_len + 1,  # the vocabulary-wide logits of the answer positions only
    )
    logits = out.logits[:, :-1].float() / temperature  # position t predicts answer token t
    logprobs = torch.log_softmax(logits, -1).gather(-1, batch["answer_ids"].unsqueeze(-1)).squeeze(-1)
    hidden = out.hidden_states[-1][:, -answer_len - 1 : -1]
    values = head(hidden.to(head.weight.dtype)).squeeze(-1)
    return logprobs, values, logits


# -- the loop -------------------------------------------------------------------------------------


@dataclass
class PPOTrainer:
    """The loop's state: what the shared run layer reads (`args`, `model`, `state`) plus PPO's own."""

    args: Any  # transformers TrainingArguments from train/run.py's training_arguments
    model: Any  # PeftModel: the policy (adapter "default") and its reference
    head: torch.nn.Linear
    tokenizer: Any
    recipe: PPORecipe
    reward: Scorer
    questions: list[str]
    prompts: list[str]
    degeneration: Degeneration
    state: Any = None  # transformers TrainerState: global_step, log_history (saved with each checkpoint)
    kl: AdaptiveKL = field(init=False)
    tokens: int = 0  # non-pad tokens of this invocation's rollouts (prompt + answer): the throughput's numerator

    def __post_init__(self) -> None:
        from transformers import Trainer, TrainerState, get_scheduler

        p = self.recipe.ppo
        self.kl = AdaptiveKL(p.kl_coef, p.target_kl, p.kl_horizon, p.adaptive_kl)
        self.state = TrainerState(max_steps=self.total_steps(), logging_steps=1)
        params = [q for q in [*self.model.parameters(), *self.head.parameters()] if q.requires_grad]
        optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args)
        self.optimizer = optimizer_cls(params, **kwargs, weight_decay=self.args.weight_decay)
        updates = self.total_steps() * self.updates_per_step()
        self.scheduler = get_scheduler(
            self.args.lr_scheduler_type, self.optimizer, self.args.get_warmup_steps(updates), updates
        )
        device = next(self.model.parameters()).device
        half = torch.bfloat16 if self.args.bf16 else torch.float16
        self.autocast = torch.autocast(device.type, dtype=half) if self.args.bf16 or self.args.fp16 else None
        self.scaler = torch.amp.GradScaler(device.type, enabled=bool(self.args.fp16))

    def is_world_process_zero(self) -> bool:
        return True  # one process (checked before the run starts)

    def total_steps(self) -> int:
        if self.args.max_steps > 0:
            return int(self.args.max_steps)
        return math.ceil(self.args.num_train_epochs * len(self.prompts) / self.recipe.ppo.rollout_batch_size)

    def updates_per_step(self) -> int:
        minibatches = math.ceil(self.recipe.ppo.rollout_batch_size / self.args.per_device_train_batch_size)
        return self.recipe.ppo.ppo_epochs * math.ceil(minibatches / self.args.gradient_accumulation_steps)

    def batch_indices(self, step: int) -> list[int]:
        """Prompts of one step: a fresh seeded permutation per pass over the prompts, so a resume sees the same."""
        size, n = self.recipe.ppo.rollout_batch_size, len(self.prompts)
        picked: list[int] = []
        position = step * size
        while len(picked) < size:
            epoch, offset = divmod(position, n)
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.args.seed + epoch)).tolist()
            take = order[offset : offset + size - len(picked)]
            picked += take
            position += len(take)
        return picked

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with self.autocast or contextlib.nullcontext():
            return answer_logprobs_and_values(self.model, self.head, batch, self.recipe.sampling.temperature)

    @torch.no_grad()
    def rollout(self, indices: list[int]) -> dict[str, Any]:
        """Sample answers, score them, and compute everything the updates compare against."""
        self.model.eval()
        sampling = self.recipe.sampling
        generated = generate(
            self.model, self.tokenizer, [self.prompts[i] for i in indices], sampling.max_new_tokens, sampling
        )
        batch = {
            "prompt_ids": generated.prompt_ids,
            "prompt_mask": generated.prompt_mask,
            "answer_ids": generated.answer_ids,
            "answer_mask": generated.answer_mask,
        }
        logprobs, values, _ = self.forward(batch)
        with reference(self.model):
            ref_logprobs, _, _ = self.forward(batch)
        answers = decode_answers(self.tokenizer, generated)
        scores = torch.tensor(self.reward.score([self.questions[i] for i in indices], answers), device=logprobs.device)
        mask = generated.answer_mask.float()
        rewards, kl = kl_penalized_rewards(scores, logprobs, ref_logprobs, mask, self.kl.value)
        advantages, returns = gae(rewards, values, mask, self.recipe.ppo.gamma, self.recipe.ppo.lam)
        self.tokens += int(generated.prompt_mask.sum() + generated.answer_mask.sum())
        return {
            **batch,
            "old_logprobs": logprobs,
            "old_values": values,
            "advantages": masked_whiten(advantages, mask),
            "returns": returns,
            "mask": mask,
            "scores": scores,
            "kl": kl,
        }

    def update(self, rollout: dict[str, Any]) -> dict[str, float]:
        """`ppo_epochs` passes of clipped policy + value updates over the rollout, in shuffled minibatches."""
        p, args = self.recipe.ppo, self.args
        self.model.train()
        sums: dict[str, float] = {"policy_loss": 0.0, "value_loss": 0.0, "clip_fraction": 0.0, "entropy": 0.0}
        n, size = len(rollout["scores"]), args.per_device_train_batch_size
        passes = 0
        for _ in range(p.ppo_epochs):
            order = torch.randperm(n).tolist()
            minibatches = [order[i : i + size] for i in range(0, n, size)]
            for k, rows in enumerate(minibatches):
                mb = {key: value[rows] for key, value in rollout.items()}
                logprobs, values, logits = self.forward(mb)
                pg, clip_fraction = policy_loss(
                    logprobs, mb["old_logprobs"], mb["advantages"], mb["mask"], p.clip_range
                )
                vf, _ = value_loss(values, mb["old_values"], mb["returns"], mb["mask"], p.clip_range_value)
                loss = (pg + p.vf_coef * vf) / args.gradient_accumulation_steps
                self.scaler.scale(loss).backward()
                if (k + 1) % args.gradient_accumulation_steps == 0 or k + 1 == len(minibatches):
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(
                        [q for g in self.optimizer.param_groups for q in g["params"]], args.max_grad_norm
                    )
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                    self.scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
                with torch.no_grad():
                    sums["entropy"] += float(masked_mean(entropy(logits), mb["mask"]))
                sums["policy_loss"] += pg.item()
                sums["value_loss"] += vf.item()
                sums["clip_fraction"] += clip_fraction.item()
                passes += 1
        return {key: value / passes for key, value in sums.items()}

    def step(self) -> dict[str, float]:
        """One PPO step: rollout, updates, KL coefficient; returns the step's log entry."""
        torch.manual_seed(self.args.seed + self.state.global_step)  # the same samples after a resume
        started = time.perf_counter()
        rollout = self.rollout(self.batch_indices(self.state.global_step))
        kl_per_answer = float(rollout["kl"].sum(1).mean())
        kl_per_token = float(masked_mean(rollout["kl"], rollout["mask"]))
        kl_coef = self.kl.value
        rolled_out = time.perf_counter()
        losses = self.update(rollout)
        self.kl.update(kl_per_answer, len(rollout["scores"]))
        self.state.global_step += 1
        return {
            "step": self.state.global_step,
            "epoch": round(self.state.global_step * self.recipe.ppo.rollout_batch_size / len(self.prompts), 3),
            "reward": float(rollout["scores"].mean()),
            "kl": kl_per_answer,
            "kl_per_token": kl_per_token,
            "kl_coef": kl_coef,
            **losses,
            "loss": losses["policy_loss"] + self.recipe.ppo.vf_coef * losses["value_loss"],
            "answer_length": float(rollout["mask"].sum(1).mean()),
            "learning_rate": self.scheduler.get_last_lr()[0],
            "rollout_seconds": round(rolled_out - started, 3),  # sampling, reference and reward passes
            "update_seconds": round(time.perf_counter() - rolled_out, 3),  # the ppo_epochs of minibatch updates
        }

    # -- checkpoints: adapter + value head + optimizer + scheduler + state, like a Trainer checkpoint ------

    def save(self, directory: Path) -> None:
        """The policy's adapter (not the frozen reference copy), the value head and the tokenizer."""
        from safetensors.torch import save_file

        self.model.save_pretrained(str(directory), selected_adapters=["default"])
        save_file({k: v.contiguous() for k, v in self.head.state_dict().items()}, str(directory / VALUE_HEAD))
        self.tokenizer.save_pretrained(str(directory))

    def save_checkpoint(self, run_dir: Path) -> None:
        """A `checkpoint-N` that `--resume` continues from; trainer_state.json is written last, as transformers
        does, so a checkpoint cut short by a crash has none and the run layer passes it over."""
        directory = run_dir / f"checkpoint-{self.state.global_step}"
        self.save(directory)
        torch.save(self.optimizer.state_dict(), directory / "optimizer.pt")
        torch.save(self.scheduler.state_dict(), directory / "scheduler.pt")
        d = self.degeneration
        ppo_state = {
            "kl_coef": self.kl.value,
            "before": d.before,
            "before_answers": d.before_answers,
            "checks": d.checks,
        }
        (directory / "ppo_state.json").write_text(json.dumps(ppo_state))
        self.state.save_to_json(str(directory / "trainer_state.json"))
        checkpoints = sorted(run_dir.glob("checkpoint-*"), key=lambda c: int(c.name.split("-")[1]))
        for old in checkpoints[: -self.args.save_total_limit] if self.args.save_total_limit else []:
            shutil.rmtree(old)

    def load_checkpoint(self, directory: Path) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file
        from transformers import TrainerState

        set_peft_model_state_dict(self.model, load_file(str(directory / "adapter_model.safetensors")), "default")
        self.head.load_state_dict(load_file(str(directory / VALUE_HEAD)))
        self.optimizer.load_state_dict(torch.load(directory / "optimizer.pt", weights_only=True))
        self.scheduler.load_state_dict(torch.load(directory / "scheduler.pt", weights_only=True))
        self.state = TrainerState.load_from_json(str(directory / "trainer_state.json"))
        self.state.max_steps = self.total_steps()  # the resumed run's own length (e.g. a raised max_steps)
        saved = json.loads((directory / "ppo_state.json").read_text())
        self.kl.value = saved["kl_coef"]
        d = self.degeneration
        d.before, d.before_answers, d.checks = saved["before"], saved["before_answers"], saved["checks"]


def value_head_for(model: Any) -> torch.nn.Linear:
    """A zero-initialised linear value head on the policy's hidden size (values start at 0), fp32."""
    head = torch.nn.Linear(model.config.get_text_config().hidden_size, 1)
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    return head.to(next(model.parameters()).device)


def run_ppo(
    recipe: PPORecipe,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    inspect: int = 0,
    reward: Scorer | None = None,
) -> AlignmentRun | None:
    """Check the inputs, run the PPO loop (resumable; stops on collapse), save adapter + value head + run card.

    `inspect` > 0: print that many prompts as the policy receives them, and stop (None) before any model.
    `reward` replaces the reward run (tests rig one); by default `reward_model.run` is loaded.
    """
    from peft import get_peft_model
    from transformers import TrainingArguments
    from trl.trainer.utils import disable_dropout_in_model

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise CurateError("train ppo runs in one process: launch it without accelerate/torchrun")
    inputs = online_inputs(recipe, "ppo", own_reward=reward is not None, inspect=inspect)
    if inputs is None:
        return None
    recipe, policy_card = inputs.recipe, inputs.policy_card
    args = TrainingArguments(**training_arguments(recipe, run_dir_for(recipe, inputs.data.name, "ppo"), has_eval=False))
    run = open_run("ppo", args, resume, overwrite)

    model, peft_config = load_policy(recipe, policy_card)
    if peft_config is not None:
        model = get_peft_model(model, peft_config)
    else:
        add_reference_adapter(model)
    disable_dropout_in_model(model)  # dropout would make the rollout's log-probs differ from the update's
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    reward = reward or RewardModel(str(recipe.reward_model.run), recipe.reward_model.batch_size)
    check = heldout_check(inputs.data, inputs.tokenizer, inputs.prompt_format, recipe.degeneration, reward)
    trainer = PPOTrainer(
        args,
        model,
        value_head_for(model),
        inputs.tokenizer,
        recipe,
        reward,
        inputs.questions,
        inputs.prompts,
        Degeneration(check, recipe.degeneration),
    )
    if run.resumed_from:
        trainer.load_checkpoint(Path(run.resumed_from))
    else:
        trainer.degeneration.start(model)
    trained = train_loop(trainer, run.dir, quiet)
    reference_kind = (
        "frozen copy of the policy run's adapter" if policy_card else "the policy with its adapter disabled"
    )
    own: dict[str, Any] = {
        "data": inputs.prompt_format.card_data(),
        "hyperparameters": {"ppo": recipe.ppo.model_dump(), "sampling": recipe.sampling.model_dump()},
        "policy": {"run": recipe.policy.run, "reference": reference_kind, "value_head": VALUE_HEAD},
        "reward_model": {"run": recipe.reward_model.run} if recipe.reward_model.run else {"run": None, "rigged": True},
        "ppo_log": trainer.state.log_history,
        "degeneration": trainer.degeneration.card(model),
    }
    return alignment_card(run, trainer, recipe, inputs.data, trained, own, policy_card)


def train_loop(trainer: PPOTrainer, run_dir: Path, quiet: bool) -> Trained:
    """PPO steps up to max_steps (or a collapse), measured and shown as the run layer measures and shows a
    TRL trainer (RunMeter: tokens/s over the steps only, not the held-out checks or checkpoints; the progress
    bar, or plain lines off a terminal); a checkpoint per pass over the prompts; the policy saved at the end."""
    from transformers import TrainerControl

    from train.card import peak_memory, reset_peak_memory
    from train.progress import progress_callback

    args, state, control = trainer.args, trainer.state, TrainerControl()
    meter = RunMeter()
    shown = ("reward", "kl", "answer_length")
    callbacks = (
        [meter] if quiet else [meter, progress_callback("train ppo", trainer.recipe.logging.progress_seconds, shown)]
    )
    steps_per_epoch = math.ceil(len(trainer.questions) / trainer.recipe.ppo.rollout_batch_size)
    reset_peak_memory()
    started = time.perf_counter()
    for callback in callbacks:
        callback.on_train_begin(args, state, control)
    while state.global_step < state.max_steps:
        for callback in callbacks:
            callback.on_step_begin(args, state, control)
        entry = trainer.step()
        state.log_history.append(entry)
        for callback in callbacks:  # the step's own figures first, so a progress line shows them
            callback.on_log(args, state, control, logs=entry)
            callback.on_step_end(args, state, control)
        step = state.global_step
        stop = trainer.degeneration.observe(step, kl_per_token=entry["kl_per_token"])
        if not stop and trainer.degeneration.due(step):
            stop = trainer.degeneration.observe(step, model=trainer.model)
        if args.save_strategy == "epoch" and (step % steps_per_epoch == 0 or step == state.max_steps):
            trainer.save_checkpoint(run_dir)
        if stop:
            break
    for callback in callbacks:
        callback.on_train_end(args, state, control)
    wall = time.perf_counter() - started
    memory = peak_memory()
    trainer.save(run_dir)
    log = state.log_history
    metrics = {
        "global_step": state.global_step,
        "train_loss": sum(e["loss"] for e in log) / max(len(log), 1),  # every step is logged, a resumed run's too
        **{f"last_{k}": log[-1][k] for k in ("reward", "kl", "kl_per_token", "entropy", "answer_length")},
    }
    return Trained(metrics, throughput(trainer.tokens, meter, 0, wall), memory)


ppo_command = options.verb_command(
    "ppo",
    PPORecipe,
    (*ONLINE_FLAGS, *ALIGNMENT_FLAGS, Flag("ppo.kl_coef"), Flag("ppo.target_kl")),
    run_ppo,
    alignment_finish(
        ("last_reward", "last_kl", "global_step"), "adapter, value head, tokenizer, run_card.json, README.md"
    ),
    """PPO (our loop: TRL 1.16 has none) of an SFT policy against a reward run, on an export's prompts.

    Logs per step the mean reward, KL, entropy, clip fraction, value loss and answer length; checks
    held-out answers for degeneration and stops on collapse; writes adapter + value head + run card.

    \b
    Examples:
      train ppo --config recipes/qa-ppo.yaml
      train ppo --config recipes/qa-ppo.yaml ppo.kl_coef=0.1 training.max_steps=50
      train ppo --data out/qa-pairs --policy runs/qa-sft \\
          --reward runs/qa-reward --max-steps 20
      train ppo --config recipes/qa-ppo.yaml --inspect 2
    """,
)
