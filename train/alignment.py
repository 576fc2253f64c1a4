"""What the alignment verbs (`train dpo`, `ppo`, `rloo`, `grpo`) share: the policy, the reward, the prompts,
and the held-out degeneration check with its collapse guard.

- Policy: a `train sft` run (its adapter is trained further; its base must be the recipe's model) or,
  without one, `model.name` with a fresh LoRA adapter. Each model sees prompts the way it was trained:
  the policy run's template/format, the reward run's own (train/score.py).
- Reward: a `train reward` run, scoring (question, answer) exactly as `train score` does.
- Prompts: the bare questions of an export (untemplated strings or one user turn), one per question.
- Held-out check: greedy answers to the test split's questions, scored and measured by
  train/degeneration.py before, every `degeneration.check_every` steps, and after training.
- Command: `ALIGNMENT_FLAGS` (--policy, --reward, --[no-]stop-on-collapse) beside the everyday flags of
  train/options.py, and `alignment_finish`: the run layer's report, the held-out line, a collapse as one red line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from pydantic import Field
from transformers import TrainerCallback

from curate.config import Flag
from curate.console import console, err_console
from curate.errors import CurateError
from curate.render import Renderer
from train.card import read_run_card
from train.config import BaseRecipe, _Section
from train.data import TrainData
from train.degeneration import DegenerationSection, collapse_reason, degeneration_report
from train.options import TRAIN_FLAGS
from train.run import Run, Trained, report, write_card

# -- recipe sections ------------------------------------------------------------------------------


class PolicySection(_Section):
    """Where the policy starts."""

    run: str | None = Field(
        default=None,
        description="A `train sft` run directory whose adapter is trained further (model.name must be its base).",
    )
    chat_template: bool = Field(
        default=True,
        description="Without a policy run: give untemplated prompts as chat turns when the tokenizer has a chat template.",
    )


class RewardModelSection(_Section):
    """The trained reward model that scores answers."""

    run: str | None = Field(default=None, description="A `train reward` run directory.")
    batch_size: int = Field(default=16, ge=1, description="Answers scored per forward pass.")


class SamplingSection(_Section):
    """How rollouts are sampled from the policy (PPO, RLOO, GRPO)."""

    max_new_tokens: int = Field(default=64, ge=1, description="Longest answer sampled, in tokens.")
    temperature: float = Field(default=1.0, gt=0.0, description="Sampling temperature (1.0: the policy as it is).")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, description="Nucleus sampling (1.0: off).")
    top_k: int = Field(default=0, ge=0, description="Top-k sampling (0: off).")


class AlignmentRecipe(BaseRecipe):
    """The sections every alignment verb adds to the shared ones."""

    policy: PolicySection = Field(default_factory=PolicySection)
    reward_model: RewardModelSection = Field(default_factory=RewardModelSection)
    degeneration: DegenerationSection = Field(default_factory=DegenerationSection)


# -- the policy -----------------------------------------------------------------------------------


def same_base(card: dict[str, Any], name: str) -> bool:
    """Whether a run's base model is `name` (the same name, or both resolve to one local checkpoint)."""
    from train.model import model_path

    if card.get("base_model") == name:
        return True
    try:
        return Path(model_path(name)).resolve() == Path(card.get("base_model_path") or "").resolve()
    except CurateError:
        return False


def read_policy_run(recipe: BaseRecipe, run_dir: str) -> dict[str, Any]:
    """The policy run's card, checked: a causal-LM run with a LoRA adapter on the recipe's base model."""
    card = read_run_card(run_dir)
    if card.get("verb") == "reward":
        raise CurateError(f"--policy {run_dir}: a `train reward` run (a scorer), not a policy; give a `train sft` run")
    if not (Path(run_dir) / "adapter_config.json").is_file():
        raise CurateError(f"--policy {run_dir}: no LoRA adapter (adapter_config.json) to train further")
    if recipe.model.name and not same_base(card, recipe.model.name):
        raise CurateError(
            f"--policy {run_dir}: trained on base '{card.get('base_model')}', not on --model {recipe.model.name}; "
            "give its base as --model (or leave --model out)"
        )
    return card


def resolve_policy(recipe: Any) -> tuple[Any, dict[str, Any] | None]:
    """The recipe with model.name filled from the policy run (when one is given) and that run's card."""
    if not recipe.policy.run:
        if not recipe.model.name:
            raise CurateError("no policy: pass --policy SFT_RUN_DIR or --model NAME")
        return recipe, None
    card = read_policy_run(recipe, recipe.policy.run)
    if not recipe.model.name:
        recipe = recipe.model_copy(update={"model": recipe.model.model_copy(update={"name": card["base_model"]})})
    return recipe, card


@dataclass(frozen=True)
class PromptFormat:
    """How a policy reads prompts: its SFT export's template, chat turns (a conversations export), or plain strings.

    The same three facts a run card's `data` section records, so `train generate` renders prompts for an
    alignment run exactly as for the SFT run it started from (curate.render.Renderer).
    """

    template: str | None = None
    conversational: bool = False
    default_system_prompt: bool = False

    @classmethod
    def of_run(cls, card: dict[str, Any]) -> PromptFormat:
        """The format a run was trained in, from its card."""
        data = card.get("data", {})
        chat = data.get("format") == "messages" or bool(data.get("chat_strings"))
        return cls(data.get("template"), chat, bool(data.get("default_system_prompt")))

    def renderer(self, tokenizer: Any) -> Renderer:
        """The rendering of this format for `tokenizer` (bare question/answer strings become chat turns if chat)."""
        return Renderer(
            tokenizer, self.template, default_system_prompt=self.default_system_prompt, chat_strings=self.conversational
        )

    def prompts(self, questions: list[str], tokenizer: Any) -> list[str]:
        """Questions rendered as the policy's generation prompts."""
        renderer = self.renderer(tokenizer)
        return [renderer.generation_prompt(q, conversational=self.conversational) for q in questions]

    def card_data(self) -> dict[str, Any]:
        """The run card's `data` keys that say how prompts were rendered (read by `train generate` and this class)."""
        return {
            "template": self.template,
            "format": "messages" if self.conversational else "prompt-completion",
            "chat_strings": self.conversational and self.template is None,
            "default_system_prompt": self.default_system_prompt,
        }


def policy_format(card: dict[str, Any] | None, tokenizer: Any, chat_template: bool) -> PromptFormat:
    """How the policy reads prompts: as its run was trained, else chat turns when the tokenizer has a template."""
    if card is not None:
        return PromptFormat.of_run(card)
    return PromptFormat(conversational=chat_template and bool(getattr(tokenizer, "chat_template", None)))


def load_policy(recipe: AlignmentRecipe, card: dict[str, Any] | None) -> tuple[Any, Any]:
    """(model, peft_config): the base with the policy run's adapter (trainable), or the base and a fresh LoRA config."""
    from train.model import load_model, lora_config

    base = load_model(recipe.model, recipe.memory)
    if recipe.memory.quantize == "none" and torch.cuda.is_available():
        base.to("cuda")  # on the GPU already for the held-out check before training (quantized models are)
    if card is None:
        if not recipe.lora.enabled:
            raise CurateError("the alignment verbs train a LoRA adapter: lora.enabled must be true")
        return base, lora_config(recipe.lora)
    from peft import PeftModel

    return PeftModel.from_pretrained(base, str(recipe.policy.run), is_trainable=True), None


def add_reference_adapter(model: Any) -> None:
    """Freeze a copy of the loaded adapter as adapter "ref": the reference is the policy as it started.

    Disabling the adapter would give the base *before* SFT; the copy costs one adapter's memory, not a model's
    (TRL's DPO/RLOO/GRPO trainers do the same for a PeftModel they are given).
    """
    model.add_adapter("ref", model.peft_config["default"])
    for name, param in model.named_parameters():
        if ".default." in name:
            model.get_parameter(name.replace(".default.", ".ref.")).data.copy_(param.data)
    model.set_adapter("default")


@contextlib.contextmanager
def reference(model: Any) -> Iterator[None]:
    """Run the reference model: the frozen "ref" copy of a loaded adapter, else the base with the adapter disabled."""
    from trl.trainer.utils import use_adapter

    with use_adapter(model, "ref" if "ref" in model.peft_config else None):
        yield


# -- the reward -----------------------------------------------------------------------------------


def check_reward_run(run_dir: str) -> dict[str, Any]:
    """A `train reward` run's card, or one line saying what the directory is instead."""
    card = read_run_card(run_dir)
    if card.get("verb") != "reward":
        raise CurateError(
            f"--reward {run_dir}: a `train {card.get('verb')}` run, not a reward model; train one with `train reward`"
        )
    return card


class Scorer(Protocol):
    """What the alignment verbs need from a reward: one score per (question, answer). `RewardModel` is one."""

    def score(self, questions: list[str], answers: list[str]) -> list[float]: ...


class RewardModel:
    """A `train reward` run as a reward: `score(questions, answers)`."""

    def __init__(self, run_dir: str, batch_size: int = 16) -> None:
        from train.score import load_reward_model

        check_reward_run(run_dir)
        self.run_dir = run_dir
        self.batch_size = batch_size
        self.model, self.tokenizer, self.renderer = load_reward_model(run_dir)

    def score(self, questions: list[str], answers: list[str]) -> list[float]:
        """The reward of each answer to its question, rendered as the reward model was trained (train/score.py)."""
        from train.score import reward_scores

        pairs = list(zip(questions, answers, strict=True))
        return reward_scores(self.model, self.tokenizer, pairs, self.renderer, self.batch_size)


# -- prompts --------------------------------------------------------------------------------------


def bare_question(prompt: Any, where: str) -> str:
    """The question of one prompt: the string itself, or the content of a single user turn."""
    if isinstance(prompt, str):
        return prompt
    turns = [t for t in prompt if t.get("role") != "system"]
    if len(turns) != 1 or turns[0].get("role") != "user":
        raise CurateError(f"{where}: the prompt is {len(turns)} turns; prompts for alignment are one user question")
    return str(turns[0]["content"])


def questions_of(data: TrainData, split: str) -> list[str]:
    """The distinct questions of one split, in order (a preference export repeats a question per pair)."""
    if data.template:
        raise CurateError(
            f"{data.source}: prompts rendered with template '{data.template}'; alignment needs the bare questions "
            "(build the export without a template: each model renders prompts its own way)"
        )
    rows = data.dataset[split]
    if "prompt" in rows.column_names:
        prompts = rows["prompt"]
    elif "messages" in rows.column_names:
        prompts = [m[:-1] for m in rows["messages"]]
    else:
        raise CurateError(f"{data.source}: no `prompt` or `messages` column to take prompts from")
    found = [bare_question(p, f"{data.source} {split} row {i}") for i, p in enumerate(prompts)]
    return list(dict.fromkeys(found))


@dataclass
class OnlineInputs:
    """What online RL (ppo, rloo, grpo) starts from: the recipe (its policy resolved), the policy run's card,
    the prompts' export, the policy's tokenizer (left padding, for generation), and the prompts in its format."""

    recipe: Any
    policy_card: dict[str, Any] | None
    data: TrainData
    tokenizer: Any
    prompt_format: PromptFormat
    questions: list[str]
    prompts: list[str]


def online_inputs(recipe: Any, verb: str, own_reward: bool, inspect: int = 0) -> OnlineInputs | None:
    """Check an online-RL recipe (prompts, policy, reward run) and load its prompts, before anything is written.

    `own_reward`: the caller brings its own scorer (no reward run needed). `inspect` > 0: print that many
    prompts as the policy receives them and return None (no model loaded).
    """
    from train.data import load_data
    from train.model import load_tokenizer

    if not recipe.dataset.path:
        raise CurateError("no prompts: pass --data EXPORT_DIR (an export with a prompt column)")
    recipe, policy_card = resolve_policy(recipe)
    assert recipe.model.name is not None
    if not own_reward:
        if not recipe.reward_model.run:
            raise CurateError("no reward: pass --reward REWARD_RUN_DIR (a `train reward` run)")
        check_reward_run(recipe.reward_model.run)
    data = load_data(recipe.dataset.path, verb)
    tokenizer = load_tokenizer(recipe.model.name, "left", recipe.tokenizer.pad_token)
    prompt_format = policy_format(policy_card, tokenizer, recipe.policy.chat_template)
    questions = questions_of(data, "train")
    prompts = prompt_format.prompts(questions, tokenizer)
    if inspect:
        from train.inspect import inspect_prompts

        inspect_prompts(data, encode_prompts(tokenizer, prompts)["input_ids"], tokenizer, verb, inspect)
        return None
    return OnlineInputs(recipe, policy_card, data, tokenizer, prompt_format, questions, prompts)


# -- generation and the held-out check ------------------------------------------------------------


@dataclass
class Generated:
    """A batch of answers: left-padded prompt ids, right-padded answer ids, and masks (answers end at EOS)."""

    prompt_ids: Any
    prompt_mask: Any
    answer_ids: Any
    answer_mask: Any


def stop_ids(model: Any, tokenizer: Any) -> set[int]:
    """Token ids that end an answer: the tokenizer's EOS and the model's generation EOS ids."""
    eos = model.generation_config.eos_token_id
    found = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    return found | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set())


def encode_prompts(tokenizer: Any, prompts: list[str], **kwargs: Any) -> Any:
    """Rendered prompts tokenized as the policy is prompted (`kwargs`: the tokenizer's, e.g. padding)."""
    bos = tokenizer.bos_token  # one BOS, as curate.render tokenizes: none added to a prompt that starts with it
    add_bos = not (bos and prompts and prompts[0].startswith(bos))
    return tokenizer(prompts, add_special_tokens=add_bos, **kwargs)


def generate(
    model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int, sampling: SamplingSection | None = None
) -> Generated:
    """Answer rendered prompts in one batch: greedy when `sampling` is None; the answer mask ends at the first EOS."""
    device = next(model.parameters()).device
    encoded = encode_prompts(tokenizer, prompts, return_tensors="pt", padding=True, padding_side="left").to(device)
    settings: dict[str, Any] = {"do_sample": False}
    if sampling is not None:
        settings = {"do_sample": True, "temperature": sampling.temperature, "top_p": sampling.top_p}
        settings["top_k"] = sampling.top_k
    with torch.no_grad():
        output = model.generate(
            **encoded, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, **settings
        )
    answers = output[:, encoded["input_ids"].shape[1] :]
    ends = torch.zeros_like(answers, dtype=torch.bool)
    for token in stop_ids(model, tokenizer):
        ends |= answers == token
    # Keep each answer up to and including its first end token: the tokens after it are padding.
    after_end = (ends.long().cumsum(1) - ends.long()) > 0
    return Generated(encoded["input_ids"], encoded["attention_mask"], answers, (~after_end).long())


def decode_answers(tokenizer: Any, generated: Generated) -> list[str]:
    """The answers as text (special tokens dropped)."""
    return [
        tokenizer.decode(ids[mask.bool()], skip_special_tokens=True).strip()
        for ids, mask in zip(generated.answer_ids, generated.answer_mask, strict=True)
    ]


@dataclass
class HeldoutCheck:
    """Greedy answers to held-out questions, their mean reward (when a reward model is given) and degeneration."""

    questions: list[str]
    prompts: list[str]
    tokenizer: Any
    max_new_tokens: int
    reward: Scorer | None = None
    held_out: bool = True  # False: the data has no test split, so train questions stand in
    batch_size: int = 16

    def answers(self, model: Any) -> list[str]:
        """The model's greedy answers (the model's train/eval mode is restored afterwards)."""
        was_training = model.training
        model.eval()
        try:
            found: list[str] = []
            for i in range(0, len(self.prompts), self.batch_size):
                batch = generate(model, self.tokenizer, self.prompts[i : i + self.batch_size], self.max_new_tokens)
                found += decode_answers(self.tokenizer, batch)
            return found
        finally:
            model.train(was_training)

    def run(self, model: Any) -> tuple[dict[str, Any], list[str]]:
        """The degeneration report (with `mean_reward` when scored) and the answers it was computed on."""
        answers = self.answers(model)
        rewards = self.reward.score(self.questions, answers) if self.reward is not None else None
        return degeneration_report(answers, rewards), answers


def heldout_check(
    data: TrainData,
    tokenizer: Any,
    prompt_format: PromptFormat,
    limits: DegenerationSection,
    reward: Scorer | None,
) -> HeldoutCheck:
    """The check on the first `limits.prompts` test questions (train questions when the data has no test split)."""
    held_out = data.eval is not None and len(data.eval) > 0
    questions = questions_of(data, "test" if held_out else "train")[: limits.prompts]
    prompts = prompt_format.prompts(questions, tokenizer)
    return HeldoutCheck(questions, prompts, tokenizer, limits.max_new_tokens, reward, held_out)


@dataclass
class Degeneration:
    """What the check saw over a run: before, each check, after, and the collapse (if any)."""

    check: HeldoutCheck
    limits: DegenerationSection
    before: dict[str, Any] | None = None
    before_answers: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    collapse: dict[str, Any] | None = None

    def start(self, model: Any) -> None:
        """Measure the policy before training (kept across a resume by the caller)."""
        self.before, self.before_answers = self.check.run(model)
        empty = sum(not answer for answer in self.before_answers)
        if empty > len(self.before_answers) / 2:  # nothing to improve, and no n-grams to watch
            err_console.print(
                f"[bold yellow]warning:[/] the starting policy answers {empty} of {len(self.before_answers)} held-out "
                "questions with nothing: an instruct model asked in a format it was not tuned on often ends at "
                "once (SFT data in messages format, or with a chat template, avoids that)",
                highlight=False,
                soft_wrap=True,
            )

    def due(self, step: int) -> bool:
        """Whether the periodic held-out check runs after this optimizer step."""
        return self.limits.check_every > 0 and step > 0 and step % self.limits.check_every == 0

    def observe(self, step: int, model: Any = None, kl_per_token: float | None = None) -> str | None:
        """Record a periodic check (when `model` is given) and/or a KL reading; return why to stop, if it is time."""
        now = None
        if model is not None:
            now, _ = self.check.run(model)
            self.checks.append({"step": step, **now})
        reason = collapse_reason(self.before, now, kl_per_token, self.limits)
        if reason and self.collapse is None:
            self.collapse = {"step": step, "reason": reason, "stopped": self.limits.stop_on_collapse}
            if not self.limits.stop_on_collapse:
                console.print(f"[yellow]collapse at step {step}[/]: {reason} (continuing: --no-stop-on-collapse)")
        return reason if self.limits.stop_on_collapse else None

    def card(self, model: Any, samples: int = 3) -> dict[str, Any]:
        """The run card's `degeneration` section: before vs after on the same prompts, the checks, the collapse."""
        after, answers = self.check.run(model)
        return {
            "held_out": self.check.held_out,
            "prompts": len(self.check.questions),
            "generation": {"decoding": "greedy", "max_new_tokens": self.check.max_new_tokens},
            "limits": self.limits.model_dump(),
            "before": self.before,
            "after": after,
            "checks": self.checks,
            "collapse": self.collapse,
            "samples": [
                {"prompt": q, "before": b, "after": a}
                for q, b, a in list(zip(self.check.questions, self.before_answers, answers, strict=False))[:samples]
            ],
        }


class CollapseGuard(TrainerCallback):
    """The degeneration check inside a TRL trainer: held-out checks every N steps, the logged KL each log."""

    def __init__(self, degeneration: Degeneration) -> None:
        self.degeneration = degeneration

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        kl = (logs or {}).get("kl")  # TRL's RLOO/GRPO log the mean per-token KL to the reference
        if kl is not None and self.degeneration.observe(state.global_step, kl_per_token=float(kl)):
            control.should_training_stop = True

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        due = model is not None and self.degeneration.due(state.global_step)
        if due and self.degeneration.observe(state.global_step, model=model):
            control.should_training_stop = True


def collapse_line(degeneration: dict[str, Any] | None) -> str | None:
    """The one line a user reads when a run stopped on collapse (None when it did not)."""
    collapse = (degeneration or {}).get("collapse")
    if not collapse or not collapse.get("stopped"):
        return None
    return f"stopped at step {collapse['step']} on collapse: {collapse['reason']}"


def print_degeneration(card: dict[str, Any] | None) -> None:
    """Held-out reward and degeneration before -> after, one line."""
    section = (card or {}).get("degeneration") or {}
    before, after = section.get("before"), section.get("after")
    if not before or not after:
        return
    keys = [k for k in ("mean_reward", "distinct_1", "distinct_2", "mean_words", "identical_share") if k in after]
    shown = " · ".join(f"{k} {before[k]:.3g} → {after[k]:.3g}" for k in keys)
    console.print(f"held-out ({section['prompts']} prompts): {shown}", highlight=False, soft_wrap=True)


# -- what an alignment verb returns and prints at the end -----------------------------------------


@dataclass
class AlignmentRun:
    """What an alignment verb produced: the run directory, the trainer (policy, reference) and the run card."""

    run_dir: Path
    trainer: Any
    card: dict[str, Any]


def alignment_card(
    run: Run,
    trainer: Any,
    recipe: BaseRecipe,
    data: TrainData,
    trained: Trained,
    own: dict[str, Any],
    policy_card: dict[str, Any] | None,
) -> AlignmentRun:
    """Write the run card (`write_card` with the verb's `own` fields; a policy run's LoRA settings are the
    adapter's, not the recipe's) and return the run."""
    if policy_card is not None:
        own = {**own, "lora": policy_card.get("lora")}
    return AlignmentRun(run.dir, trainer, write_card(run, trainer, recipe, data, trained, own))


def alignment_finish(shown: Sequence[str], written: str) -> Callable[[AlignmentRun, bool], None]:
    """The end of an alignment command (`verb_command`'s finish): the run layer's summary (with --quiet the run
    directory), the held-out line; a run stopped on collapse is one red line and exit 1, its directory written.
    """

    def finish(run: AlignmentRun, quiet: bool) -> None:
        if report(run.run_dir, quiet, shown, written) is not None:
            print_degeneration(run.card)
        stopped = collapse_line(run.card.get("degeneration"))
        if stopped:
            raise CurateError(f"train {run.card['verb']} {stopped} (run written to {run.run_dir})")

    return finish


# The flags every alignment verb adds to the everyday ones (train/options.py); the rest are KEY=VALUE.
ALIGNMENT_FLAGS = (
    Flag("policy.run", "--policy"),
    Flag("reward_model.run", "--reward"),
    Flag("degeneration.stop_on_collapse"),
)
# Online RL (ppo, rloo, grpo) samples its answers: no test split is evaluated, no example is cut to max_length.
ONLINE_FLAGS = tuple(f for f in TRAIN_FLAGS if f.key not in ("training.eval_rows", "tokenizer.max_length"))
