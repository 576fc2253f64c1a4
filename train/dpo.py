"""`train dpo`: Direct Preference Optimization on a preference export, with TRL's DPOTrainer (LoRA / QLoRA).

Loss (TRL's `sigmoid`, Rafailov et al. 2023), with the implicit reward r(x, y) = β·(log π(y|x) − log π_ref(y|x)):
    −log σ(r(x, y_chosen) − r(x, y_rejected))
or any of TRL's other loss types (`ipo`, `robust` with `label_smoothing`, `hinge`, ...). The reference π_ref is
the model the run starts from, never a second copy of the base: with a fresh LoRA adapter it is the same model
with the adapter disabled (TRL keeps `ref_model` None); starting from a `train sft` run (`--policy`), TRL
freezes a copy of that run's adapter as adapter "ref", so π_ref is the SFT model; `--ref-model` loads another.
Each epoch TRL evaluates the test pairs: `eval_rewards/accuracies` (share of pairs with r_chosen > r_rejected)
and `eval_rewards/margins` (mean r_chosen − r_rejected). Greedy answers to held-out questions before and after
training feed the degeneration check (train/degeneration.py), scored when a reward run is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from curate.config import Flag
from curate.errors import CurateError
from curate.render import Renderer
from train import options
from train.alignment import (
    ALIGNMENT_FLAGS,
    AlignmentRecipe,
    AlignmentRun,
    CollapseGuard,
    Degeneration,
    PromptFormat,
    RewardModel,
    alignment_card,
    alignment_finish,
    check_reward_run,
    heldout_check,
    load_policy,
    resolve_policy,
)
from train.config import ModelSection, _Section
from train.data import TrainData
from train.run import eval_split, load_inputs, open_run, run_dir_for, train_and_evaluate, training_arguments

# TRL 1.16's DPO loss types (DPOConfig.loss_type), so a typo fails when the recipe is read, not at step one.
LossType = Literal[
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
]


class DPOSection(_Section):
    """The DPO objective and its reference model."""

    beta: float = Field(default=0.1, gt=0.0, description="β: how far the policy may move from the reference.")
    loss_type: LossType = Field(default="sigmoid", description="TRL's loss: sigmoid (DPO), ipo, robust, hinge, ...")
    label_smoothing: float = Field(
        default=0.0, ge=0.0, lt=0.5, description="Robust DPO / EXO: assumed share of flipped preference labels."
    )
    ref_model: str | None = Field(
        default=None, description="A separate reference model (default: the policy as it starts, no second copy)."
    )
    precompute_ref_log_probs: bool = Field(
        default=False, description="Compute reference log-probs once before training (a separate ref model is freed)."
    )


class DPORecipe(AlignmentRecipe):
    """`train dpo`: preference optimization with TRL's DPOTrainer."""

    dpo: DPOSection = Field(default_factory=DPOSection)


@dataclass
class DPOData:
    """The export's pairs, the rendering the policy reads them in, the prompt format the run card records, max_length."""

    data: TrainData
    renderer: Renderer
    prompt_format: PromptFormat
    max_length: int


def dpo_inputs(
    recipe: DPORecipe, policy_card: dict[str, Any] | None, quiet: bool = False, inspect: int = 0
) -> DPOData | None:
    """The preference export rendered as the policy reads prompts: its SFT run's format (chat turns or template),
    else chat turns when the tokenizer has a chat template (`policy.chat_template`); max_length as for `train reward`.

    `inspect` > 0: print that many pairs as the trainer would receive them and return None (no model loaded).
    """
    wanted = PromptFormat.of_run(policy_card) if policy_card is not None else None
    if wanted is not None and recipe.dataset.default_system_prompt is None:  # as the policy's SFT data was
        dataset = recipe.dataset.model_copy(update={"default_system_prompt": wanted.default_system_prompt})
        recipe = recipe.model_copy(update={"dataset": dataset})
    chat = wanted.conversational if wanted is not None else recipe.policy.chat_template
    inputs = load_inputs(recipe, "dpo", quiet, inspect, chat_strings=chat)
    if inputs is None:
        return None
    data, renderer = inputs.data, inputs.renderer
    if "prompt" not in data.columns:
        raise CurateError(f"{data.source}: `train dpo` needs a `prompt` column beside chosen and rejected")
    if wanted is not None and data.template is not None and data.template != wanted.template:
        raise CurateError(
            f"{data.source}: pairs rendered with template '{data.template}', but the policy run "
            f"{recipe.policy.run} was trained with {wanted.template or 'no template'}; build the pairs without one"
        )
    conversational = renderer.chat_strings or isinstance(data.dataset["train"][0]["prompt"], list)
    prompt_format = PromptFormat(data.template, conversational, renderer.default_system_prompt)
    return DPOData(data, renderer, prompt_format, inputs.max_length)


def rendered_pairs(dataset: Any, renderer: Renderer) -> Any:
    """`prompt_ids`, `chosen_ids`, `rejected_ids` of each pair, tokenized by curate.render (what `--inspect` shows).

    The prompt is what both sides share before their first learned token; each side is the rest of its ids.
    """

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        rows = [dict(zip(batch, values, strict=True)) for values in zip(*batch.values(), strict=True)]
        out: dict[str, list[Any]] = {"prompt_ids": [], "chosen_ids": [], "rejected_ids": []}
        for chosen, rejected in renderer.pairs(rows):
            n = min(chosen.prompt_length, rejected.prompt_length)
            out["prompt_ids"].append(chosen.input_ids[:n])
            out["chosen_ids"].append(chosen.input_ids[n:])
            out["rejected_ids"].append(rejected.input_ids[n:])
        return out

    return dataset.map(encode, batched=True, remove_columns=dataset.column_names, desc="Rendering")


def rendered_dpo_trainer() -> type:
    """TRL's DPOTrainer taking rows already tokenized by `rendered_pairs`.

    TRL 1.16's DPOTrainer always tokenizes text itself (its SFTTrainer and RewardTrainer skip that for
    processed rows), which would render pairs differently from `train sft`/`reward`/`--inspect`. For such
    rows only TRL's own rule is kept: a pair whose prompt alone fills max_length is dropped.
    """
    from trl import DPOTrainer

    class RenderedDPOTrainer(DPOTrainer):  # type: ignore[misc]
        def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
            if "prompt_ids" not in dataset.column_names:
                return super()._prepare_dataset(dataset, processing_class, args, dataset_name)
            if args.max_length is None:
                return dataset
            return dataset.filter(lambda row: len(row["prompt_ids"]) < args.max_length)

    return RenderedDPOTrainer


def dpo_config(recipe: DPORecipe, run_dir: Path, has_eval: bool, max_length: int) -> Any:
    """TRL's DPOConfig: the keys every verb shares (train/run.py) plus DPO's own."""
    from trl import DPOConfig

    return DPOConfig(
        **training_arguments(recipe, run_dir, has_eval),
        beta=recipe.dpo.beta,
        loss_type=[recipe.dpo.loss_type],
        label_smoothing=recipe.dpo.label_smoothing,
        max_length=max_length,
        precompute_ref_log_probs=recipe.dpo.precompute_ref_log_probs,
    )


def reward_curve(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-epoch eval reward accuracy and margin on the test pairs, from the trainer's log history.

    The final evaluation repeats the last epoch's step; one entry per step is kept.
    """
    by_step = {
        e["step"]: {
            "epoch": round(e.get("epoch", 0.0), 3),
            "step": e["step"],
            "eval_loss": e.get("eval_loss"),
            "reward_accuracy": e["eval_rewards/accuracies"],
            "reward_margin": e.get("eval_rewards/margins"),
        }
        for e in log_history
        if "eval_rewards/accuracies" in e
    }
    return list(by_step.values())


def run_dpo(
    recipe: DPORecipe, resume: bool = False, overwrite: bool = False, quiet: bool = False, inspect: int = 0
) -> AlignmentRun | None:
    """Check the inputs, train with DPOTrainer (resumable), run the degeneration check, write adapter + run card.

    `inspect` > 0: print that many pairs as the trainer would receive them, and stop (None) before any model.
    """
    from train.model import load_model

    recipe, policy_card = resolve_policy(recipe)
    if recipe.reward_model.run:
        check_reward_run(recipe.reward_model.run)
    prepared = dpo_inputs(recipe, policy_card, quiet, inspect)
    if prepared is None:
        return None
    data, renderer, max_length = prepared.data, prepared.renderer, prepared.max_length
    test = eval_split(recipe, data.eval)  # capped by training.eval_rows
    args = dpo_config(recipe, run_dir_for(recipe, data.name, "dpo"), test is not None, max_length)
    run = open_run("dpo", args, resume, overwrite)

    model, peft_config = load_policy(recipe, policy_card)
    ref_model = None
    if recipe.dpo.ref_model:
        ref_model = load_model(ModelSection(name=recipe.dpo.ref_model, dtype=recipe.model.dtype), recipe.memory)
    reward = RewardModel(recipe.reward_model.run, recipe.reward_model.batch_size) if recipe.reward_model.run else None
    degeneration, skipped = None, None
    try:
        check = heldout_check(data, renderer.tokenizer, prepared.prompt_format, recipe.degeneration, reward)
        degeneration = Degeneration(check, recipe.degeneration)
        degeneration.start(model)
    except CurateError as exc:  # e.g. a templated export: no bare questions to answer
        skipped = str(exc)
    trainer = rendered_dpo_trainer()(
        model=model,
        ref_model=ref_model,
        args=args,
        train_dataset=rendered_pairs(data.dataset["train"], renderer),
        eval_dataset=rendered_pairs(test, renderer) if test is not None else None,
        processing_class=renderer.tokenizer,
        peft_config=peft_config,
    )
    guard = [CollapseGuard(degeneration)] if degeneration else []
    trained = train_and_evaluate(trainer, run, recipe, quiet, callbacks=guard)
    reference = recipe.dpo.ref_model or (
        "frozen copy of the policy run's adapter" if policy_card else "the policy with its adapter disabled"
    )
    own: dict[str, Any] = {
        "data": prepared.prompt_format.card_data(),
        "hyperparameters": {"max_length": max_length, **recipe.dpo.model_dump()},
        "policy": {"run": recipe.policy.run, "reference": reference},
        "reward_curve": reward_curve(trainer.state.log_history),
        "degeneration": degeneration.card(trainer.model) if degeneration else {"skipped": skipped},
    }
    return alignment_card(run, trainer, recipe, data, trained, own, policy_card)


dpo_command = options.verb_command(
    "dpo",
    DPORecipe,
    (
        *options.TRAIN_FLAGS,
        *ALIGNMENT_FLAGS,
        Flag("dpo.ref_model"),
        Flag("dpo.beta"),
        Flag("dpo.loss_type", metavar="NAME"),  # the choices, 15 of them, are listed with the keys
        Flag("dpo.label_smoothing"),
    ),
    run_dpo,
    alignment_finish(
        ("train_loss", "eval_rewards/accuracies", "eval_rewards/margins"),
        "adapter, tokenizer, run_card.json, README.md",
    ),
    """Direct Preference Optimization (LoRA / QLoRA) on a preference export, with TRL's DPOTrainer.

    The reference is the starting policy (adapter disabled, or a frozen copy of --policy's adapter):
    no second model in memory. Reports per-epoch reward accuracy and margin on the test pairs and the
    degeneration check on held-out questions before vs after.

    \b
    Examples:
      train dpo --config recipes/qa-dpo.yaml
      train dpo --config recipes/qa-dpo.yaml dpo.loss_type=ipo dpo.beta=0.5
      train dpo --data out/qa-pairs --policy runs/qa-sft \\
          --reward runs/qa-reward --beta 0.1
      train dpo --config recipes/qa-dpo.yaml --inspect 2
    """,
)
