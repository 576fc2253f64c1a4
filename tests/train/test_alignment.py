"""What the alignment verbs share (train/alignment.py): recipes, prompts, answers cut at EOS, the reward run as a scorer."""

from __future__ import annotations

from pathlib import Path

import pytest
from reward_fixtures import toy_pairs

from curate.errors import CurateError
from train.alignment import RewardModel, bare_question, decode_answers, generate, questions_of
from train.config import load_recipe
from train.data import load_data
from train.dpo import DPORecipe
from train.ppo import PPORecipe
from train.rl import RLRecipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.mark.parametrize(
    ("name", "verb", "cls"),
    [("qa-dpo.yaml", "dpo", DPORecipe), ("qa-ppo.yaml", "ppo", PPORecipe), ("qa-rloo.yaml", "rloo", RLRecipe),
     ("qa-grpo.yaml", "grpo", RLRecipe)],
)  # fmt: skip
def test_alignment_recipes_validate_and_open_with_their_command(name: str, verb: str, cls: type) -> None:
    recipe = load_recipe(cls, RECIPES / name)
    assert recipe.policy.run == "runs/qa-sft" and recipe.reward_model.run == "runs/qa-reward"
    assert recipe.dataset.path == "out/qa-pairs"  # every verb answers the same held-out questions
    head = (RECIPES / name).read_text().splitlines()[:8]
    assert any(f"train {verb} --config recipes/{name}" in line for line in head)
    assert any("=" in line and line.lstrip().startswith("#") for line in head[5:])  # an override example


def test_questions_are_the_distinct_bare_prompts(word_pairs: Path):
    data = load_data(str(word_pairs), "ppo")
    questions = questions_of(data, "train")
    assert len(questions) == len(set(questions)) == len(set(data.dataset["train"]["prompt"]))
    assert bare_question([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi?"}], "x") == "hi?"
    with pytest.raises(CurateError, match="row 3: the prompt is 3 turns"):
        turns = [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
        ]
        bare_question(turns, "data.jsonl row 3")


def test_a_templated_export_is_refused_with_the_reason(tmp_path: Path):
    from reward_fixtures import write_jsonl

    from curate.pipeline import build
    from curate.recipe import BuildRecipe

    rows = [{"prompt": f"how do i make {t} ?", "response": "good"} for t in ("tea", "bread", "eggs", "rust")]
    source = write_jsonl(rows, tmp_path / "rows.jsonl")
    build(BuildRecipe(inputs=[str(source)], out=str(tmp_path / "templated"), template="alpaca"), quiet=True)
    with pytest.raises(CurateError, match="rendered with template 'alpaca'; alignment needs the bare questions"):
        questions_of(load_data(str(tmp_path / "templated"), "ppo"), "train")


def test_answers_end_at_the_first_end_token(word_lm: Path):
    """Tokens after an answer's end token are padding: masked out, never decoded, never rewarded."""
    from transformers import AutoModelForCausalLM

    from train.model import load_tokenizer

    model = AutoModelForCausalLM.from_pretrained(word_lm)
    tokenizer = load_tokenizer(str(word_lm))
    prompts = ["how do i make tea ?", "how do i make good bread ?", "how do i make rust ?"]
    question_mark = tokenizer.convert_tokens_to_ids("?")
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, question_mark]  # a model may list several
    generated = generate(model, tokenizer, prompts, max_new_tokens=8)
    ends = (generated.answer_ids == tokenizer.eos_token_id) | (generated.answer_ids == question_mark)
    assert ends.any(1).sum() >= 1 and not ends.any(1).all()  # some answers end early, some run to max_new_tokens
    for row in range(len(prompts)):
        n = int(ends[row].long().argmax()) + 1 if ends[row].any() else 8
        assert generated.answer_mask[row, :n].all() and not generated.answer_mask[row, n:].any()
        kept = tokenizer.decode(generated.answer_ids[row, :n], skip_special_tokens=True).strip()
        assert decode_answers(tokenizer, generated)[row] == kept


def test_reward_model_scores_as_train_score_does(word_reward_run: Path, word_sft_run: Path, tmp_path: Path):
    from reward_fixtures import write_jsonl

    from train.score import score_file

    rows = [{"prompt": r["prompt"], "response": r["chosen"]} for r in toy_pairs(4, seed=3)]
    expected = score_file(word_reward_run, write_jsonl(rows, tmp_path / "a.jsonl"), tmp_path / "b.jsonl", quiet=True)
    scorer = RewardModel(str(word_reward_run), batch_size=3)
    assert scorer.score([r["prompt"] for r in rows], [r["response"] for r in rows]) == pytest.approx(expected, abs=1e-5)
    with pytest.raises(CurateError, match="not a reward model"):
        RewardModel(str(word_sft_run))
