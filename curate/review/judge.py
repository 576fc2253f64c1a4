"""An LLM judge: one more rater, scoring answers 1-10 with a rubric, through a local model or a chat endpoint.

- **Backends**: a local transformers causal LM (hub id, path, `.gguf` or the offline `smollm2`), its chat
  template applied, greedy; or any OpenAI-compatible chat endpoint (`--endpoint URL`: vLLM, llama.cpp
  server, TGI, a hosted API) through the `openai` client, the key read from an environment variable,
  each request bounded by a timeout and a few retries with backoff (the client's own).
- **Rubric**: a Jinja2 template (StrictUndefined) rendered into the user turn. Rate mode gets `prompt` and
  `answer` and must ask for one whole number; compare mode gets `prompt`, `answer_a`, `answer_b` and must
  ask for `A: <n>, B: <n>`. The defaults follow the original workflow's 1-10 scoring instruction.
- **Strict parsing** (`parse_score`, `parse_pair`): the whole reply must be the score (`7`, `7/10`,
  `Rating: 7`) or the pair; anything else is retried (`parse_retries` more tries, sampled at
  `RETRY_TEMPERATURE` with a reminder of the format) and then reported unparseable with the reply, never
  given a default score.
- **Compare mode** asks about every two answers of a prompt in both orders; an answer's score is the
  mean of all it got, and `position_bias` says how much being shown first helped.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Literal, Protocol

import jinja2
from pydantic import BaseModel, ConfigDict, Field

from curate.errors import CurateError

RATE_RUBRIC = """\
You are an expert reviewer. Rate the answer to the question below on a scale of 1 to 10, where 1 is \
terrible (wrong, unsafe, rude or useless) and 10 is great (correct, complete, clear and helpful).

Question:
{{ prompt }}

Answer:
{{ answer }}

Reply with the rating only: one whole number from 1 to 10."""

COMPARE_RUBRIC = """\
You are an expert reviewer. Rate each of the two answers to the question below on a scale of 1 to 10, \
where 1 is terrible (wrong, unsafe, rude or useless) and 10 is great (correct, complete, clear and helpful).

Question:
{{ prompt }}

Answer A:
{{ answer_a }}

Answer B:
{{ answer_b }}

Reply with the ratings only, in the form: A: <number>, B: <number>"""

REMINDER = {
    "rate": "Reply with one whole number from 1 to 10 and nothing else.",
    "compare": "Reply exactly in the form A: <number>, B: <number> (whole numbers from 1 to 10) and nothing else.",
}
REPLY_PREFIX = {"rate": "Rating:", "compare": "A:"}  # how a local model's reply starts (LocalBackend)
RETRY_TEMPERATURE = 0.7  # a retried request samples, so a deterministic model does not repeat the same reply
_SCORE = r"(10|[1-9])"
_RATE_REPLY = re.compile(rf"^\s*(?:(?:rating|score)\s*[:=]?\s*)?{_SCORE}\s*(?:/\s*10)?\s*\.?\s*$", re.IGNORECASE)
_PAIR_REPLY = re.compile(
    rf"^\s*A\s*[:=]\s*{_SCORE}\s*(?:/\s*10)?\s*[,;\n]\s*B\s*[:=]\s*{_SCORE}\s*(?:/\s*10)?\s*\.?\s*$", re.IGNORECASE
)
_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
Messages = list[dict[str, str]]


def parse_score(reply: str) -> int | None:
    """The 1-10 score a rate-mode reply consists of (`7`, `7/10`, `Rating: 7`), else None."""
    match = _RATE_REPLY.match(reply)
    return int(match.group(1)) if match else None


def parse_pair(reply: str) -> tuple[int, int] | None:
    """The (A, B) scores a compare-mode reply consists of (`A: 7, B: 4`), else None."""
    match = _PAIR_REPLY.match(reply)
    return (int(match.group(1)), int(match.group(2))) if match else None


def load_rubric(path: str | Path | None, mode: str) -> jinja2.Template:
    """The rubric template: the file at `path`, else the default of `mode` (rate | compare)."""
    text = RATE_RUBRIC if mode == "rate" else COMPARE_RUBRIC
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise CurateError(f"--rubric {path}: cannot read it ({exc.strerror})") from None
    try:
        template = _ENV.from_string(text)
    except jinja2.TemplateSyntaxError as exc:
        raise CurateError(f"--rubric {path} line {exc.lineno}: not a valid Jinja2 template ({exc.message})") from None
    fields = {"prompt": "q", "answer": "a"} if mode == "rate" else {"prompt": "q", "answer_a": "a", "answer_b": "b"}
    try:
        template.render(**fields)
    except jinja2.UndefinedError as exc:
        names = ", ".join(fields)
        raise CurateError(f"--rubric {path}: {exc.message}; a {mode} rubric may use {names}") from None
    return template


class Backend(Protocol):
    """Where the judge's replies come from: `reply_all` answers each question (one user turn) in order.

    A backend that `prefills` starts every reply with the `prefix` it is given (and returns it with the
    reply); the others ignore it.
    """

    name: str
    prefills: bool

    def reply_all(self, questions: Sequence[str], temperature: float, prefix: str = "") -> list[str]: ...


class LocalBackend:
    """A local transformers causal LM: its chat template, batched generation with left padding, one line.

    The reply is started with a prefix (`Rating:`; compare: `A:`), which gets even a small model to answer
    in the format, and ends at the first line break.
    """

    prefills = True

    def __init__(self, model: str, max_new_tokens: int = 12, batch_size: int = 8, device: str | None = None):
        from curate.extras import require

        require("curate", "a local judge model")  # torch, transformers, gguf
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from curate.hub import materialize_gguf, resolve_model

        ref = resolve_model(model)
        try:
            path = str(materialize_gguf(ref)) if ref.gguf_file else ref.path
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            loaded: Any = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise CurateError(f"--model {model}: cannot load it ({str(exc).splitlines()[0]})") from None
        if not getattr(self.tokenizer, "chat_template", None):
            raise CurateError(f"--model {model}: its tokenizer has no chat template; use an instruct/chat model")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = loaded.to(self.device).eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.name, self.max_new_tokens, self.batch_size = model, max_new_tokens, batch_size

    def reply_all(self, questions: Sequence[str], temperature: float, prefix: str = "") -> list[str]:
        import torch

        replies: list[str] = []
        for start in range(0, len(questions), self.batch_size):
            texts = [
                str(
                    self.tokenizer.apply_chat_template(
                        [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
                    )
                )
                + prefix
                for q in questions[start : start + self.batch_size]
            ]
            inputs = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
            with torch.inference_mode():
                out = self.model.generate(
                    **inputs.to(self.device),
                    **sampling,
                    max_new_tokens=self.max_new_tokens,
                    pad_token_id=self.tokenizer.pad_token_id,
                    stop_strings=["\n"],
                    tokenizer=self.tokenizer,
                )
            new = self.tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
            replies += [(prefix + text).strip() for text in new]
        return replies


class EndpointUnavailable(CurateError):
    """The chat endpoint did not answer (down, slow past the timeout, or refusing) after its retries."""


class EndpointBackend:
    """An OpenAI-compatible chat endpoint (`/v1/chat/completions`) through the `openai` client.

    Each request waits at most `timeout` seconds and is retried `retries` times with the client's backoff
    (connection errors, timeouts, 408/409/429/5xx); then the run stops with one line (`EndpointUnavailable`).
    """

    def __init__(
        self,
        url: str,
        model: str,
        key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        retries: int = 2,
        max_tokens: int = 16,
    ):
        from curate.extras import require

        require("judge", "a judge --endpoint")
        import openai

        # Local servers (vLLM, llama.cpp) take any key; a hosted API answers 401, which names the variable.
        self.client = openai.OpenAI(
            base_url=url, api_key=os.environ.get(key_env) or "none", timeout=timeout, max_retries=retries
        )
        self.name, self.url, self.key_env, self.timeout, self.retries = model, url, key_env, timeout, retries
        self.max_tokens = max_tokens

    prefills = False  # a chat API has no standard way to start the assistant's reply

    def reply_all(self, questions: Sequence[str], temperature: float, prefix: str = "") -> list[str]:
        return [self.reply([{"role": "user", "content": q}], temperature) for q in questions]

    def reply(self, conversation: Messages, temperature: float) -> str:
        """One chat completion's text ("" when the endpoint sent none)."""
        import openai

        try:
            response = self.client.chat.completions.create(
                model=self.name,
                messages=conversation,  # type: ignore[arg-type]  # {role, content} dicts, as the API takes
                temperature=temperature,
                max_tokens=self.max_tokens,
            )
        except openai.APITimeoutError:
            raise EndpointUnavailable(
                f"judge endpoint {self.url} did not answer within {self.timeout:g} s ({self.retries + 1} tries)"
            ) from None
        except openai.APIConnectionError as exc:
            raise EndpointUnavailable(f"judge endpoint {self.url} is unreachable ({_cause(exc)})") from None
        except openai.AuthenticationError:
            raise EndpointUnavailable(
                f"judge endpoint {self.url} refused the key (401): set ${self.key_env} to a valid key"
            ) from None
        except openai.APIStatusError as exc:
            body = exc.body.get("message") if isinstance(exc.body, dict) else None
            raise EndpointUnavailable(
                f"judge endpoint {self.url} answered HTTP {exc.status_code}: {_first_line(str(body or exc.message))}"
            ) from None
        except (openai.OpenAIError, ValueError) as exc:  # e.g. a body that is not a chat completion (or not JSON)
            raise EndpointUnavailable(
                f"judge endpoint {self.url} sent something that is not a chat completion ({_first_line(str(exc))})"
            ) from None
        choices = getattr(response, "choices", None)
        if not choices:
            raise EndpointUnavailable(f"judge endpoint {self.url} sent a response without choices")
        return (choices[0].message.content or "").strip()


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:200] if text.strip() else "no message"


def _cause(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return _first_line(str(cause)) if cause else _first_line(str(exc))


@dataclass
class Verdict:
    """The judge's score of one answer (None: unparseable after every try), its last reply and the tries."""

    score: int | None
    reply: str
    tries: int


def ask(
    backend: Backend, questions: Sequence[str], parse: Callable[[str], Any], mode: str, parse_retries: int
) -> list[tuple[Any, str, int]]:
    """Each question's parsed reply (None if it never parsed), the last reply, and the tries it took.

    The first try is greedy; a question whose reply does not parse is asked again, a reminder of the format
    added, sampled (`RETRY_TEMPERATURE`), at most `parse_retries` more times.
    """
    results: list[tuple[Any, str, int]] = [(None, "", 0)] * len(questions)
    pending = list(range(len(questions)))
    for attempt in range(parse_retries + 1):
        if not pending:
            break
        asked = [questions[i] + (f"\n\n{REMINDER[mode]}" if attempt else "") for i in pending]
        replies = backend.reply_all(asked, RETRY_TEMPERATURE if attempt else 0.0, REPLY_PREFIX[mode])
        still = []
        for i, reply in zip(pending, replies, strict=True):
            parsed = parse(reply)
            results[i] = (parsed, reply, attempt + 1)
            if parsed is None:
                still.append(i)
        pending = still
    return results


def rate(
    backend: Backend, rubric: jinja2.Template, answers: Sequence[tuple[str, str]], parse_retries: int = 2
) -> list[Verdict]:
    """Rate-mode verdicts of (prompt, answer) pairs."""
    questions = [rubric.render(prompt=p, answer=a) for p, a in answers]
    return [Verdict(*result) for result in ask(backend, questions, parse_score, "rate", parse_retries)]


@dataclass
class Comparison:
    """Compare-mode verdicts of one prompt's answers, and what being shown first did to the scores."""

    verdicts: list[Verdict]
    first_scores: list[int] = field(default_factory=list)  # score of the answer shown first, per parsed reply
    second_scores: list[int] = field(default_factory=list)
    unparseable: list[str] = field(default_factory=list)  # replies that never parsed


def compare(
    backend: Backend, rubric: jinja2.Template, prompt: str, answers: Sequence[str], parse_retries: int = 2
) -> Comparison:
    """Ask about every two answers of `prompt` in both orders; each answer's score is the mean of all it got
    (rounded half up), its reply the list of what it got in each order."""
    orders = [(i, j) for a, b in combinations(range(len(answers)), 2) for i, j in ((a, b), (b, a))]
    questions = [rubric.render(prompt=prompt, answer_a=answers[i], answer_b=answers[j]) for i, j in orders]
    results = ask(backend, questions, parse_pair, "compare", parse_retries)
    got: list[list[str]] = [[] for _ in answers]
    scores: list[list[int]] = [[] for _ in answers]
    out = Comparison([])
    for (i, j), (pair, reply, _tries) in zip(orders, results, strict=True):
        if pair is None:
            out.unparseable.append(reply)
            for k in (i, j):
                got[k].append(f"unparseable: {reply[:80]!r}")
            continue
        first, second = pair
        scores[i].append(first)
        scores[j].append(second)
        out.first_scores.append(first)
        out.second_scores.append(second)
        got[i].append(f"{first} shown first")
        got[j].append(f"{second} shown second")
    tries = max((r[2] for r in results), default=0)
    for k in range(len(answers)):
        mean = sum(scores[k]) / len(scores[k]) if scores[k] else None
        score = None if mean is None else int(math.floor(mean + 0.5))
        out.verdicts.append(Verdict(score, "; ".join(got[k]), tries))
    return out


def position_bias(comparisons: Sequence[Comparison]) -> dict[str, float | int]:
    """How much being shown first helped: mean score shown first minus shown second, and the share of parsed
    replies that scored the first answer higher (0.5 = no lean), over every compare-mode reply."""
    first = [s for c in comparisons for s in c.first_scores]
    second = [s for c in comparisons for s in c.second_scores]
    if not first:
        return {"replies": 0, "mean_first_minus_second": math.nan, "first_preferred": math.nan}
    wins = [1.0 if a > b else 0.5 if a == b else 0.0 for a, b in zip(first, second, strict=True)]
    return {
        "replies": len(first),
        "mean_first_minus_second": sum(first) / len(first) - sum(second) / len(second),
        "first_preferred": sum(wins) / len(wins),
    }


def batched(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """`items` in slices of `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


class JudgeConfig(BaseModel):
    """How `curate review judge` runs its judge (each key a `--flag` of the command)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        default="smollm2",
        description="The judge model: a hub id, a path or smollm2 (offline); with --endpoint, "
        "the model name the server serves.",
    )
    endpoint: str | None = Field(
        default=None,
        description="An OpenAI-compatible chat endpoint (e.g. http://localhost:8000/v1); null: run "
        "the model locally with transformers.",
    )
    api_key_env: str = Field(default="OPENAI_API_KEY", description="The environment variable holding the key.")
    timeout: float = Field(default=60.0, gt=0, description="Seconds an endpoint request may take.")
    retries: int = Field(default=2, ge=0, le=10, description="Retries of a failed endpoint request (with backoff).")
    rubric: str | None = Field(default=None, description="A Jinja2 rubric file; null: the default 1-10 rubric.")
    mode: Literal["rate", "compare"] | None = Field(
        default=None,
        description="rate (one answer) or compare (an item's answers two by two, both orders); "
        "null: the project's mode.",
    )
    name: str | None = Field(default=None, description="The judge's labeler name; null: the model.")
    batch_size: int = Field(default=8, ge=1, description="Answers per request batch (and per saved transaction).")
    parse_retries: int = Field(default=2, ge=0, le=10, description="More tries for a reply that is not a score.")
    max_new_tokens: int = Field(default=12, ge=1, description="Most tokens a local judge may write per reply.")


@dataclass
class JudgeRun:
    """What one `judge_project` did: answers asked about, rated, unparseable; compare mode's position bias."""

    judge: str
    mode: str
    to_judge: int
    rated: int = 0
    failed: int = 0
    single_answer_items: int = 0  # compare mode cannot judge an item with one answer
    bias: dict[str, float | int] | None = None


def make_backend(config: JudgeConfig) -> Backend:
    """The backend `config` asks for: an endpoint client, or a local model."""
    if config.endpoint:
        return EndpointBackend(config.endpoint, config.model, config.api_key_env, config.timeout, config.retries)
    return LocalBackend(config.model, config.max_new_tokens, config.batch_size)


def judge_project(
    store: Any,
    project: str,
    config: JudgeConfig,
    backend: Backend | None = None,
    retry_failed: bool = False,
    limit: int | None = None,
    advance: Callable[[int], None] | None = None,
) -> JudgeRun:
    """Rate the answers of `project` this judge has not rated (at most `limit`), saving each batch as it goes.

    A down or slow endpoint stops the run with one line saying how far it got; what was saved stays, and
    running it again rates only what is missing. `advance(k)` is called after each saved batch of k answers.
    """
    mode = config.mode or store.project(project).mode
    rubric = load_rubric(config.rubric, mode)
    name = config.name or config.model
    judge_id = store.judges.labeler(name)
    tasks = store.judges.to_judge(project, judge_id, retry_failed, whole_items=mode == "compare")
    todo = [t for t in tasks if t.todo][:limit]
    run = JudgeRun(name, mode, len(todo))
    if not todo:
        return run
    backend = backend or make_backend(config)
    try:
        if mode == "rate":
            for batch in batched(todo, config.batch_size):
                verdicts = rate(backend, rubric, [(t.prompt, t.answer) for t in batch], config.parse_retries)
                _save(store, judge_id, run, mode, [(t.answer_id, v) for t, v in zip(batch, verdicts, strict=True)])
                if advance:
                    advance(len(batch))
        else:
            wanted = {t.answer_id for t in todo}
            comparisons = []
            for answers in _by_item(tasks).values():
                mine = [t for t in answers if t.answer_id in wanted]
                if not mine:
                    continue
                if len(answers) < 2:
                    run.single_answer_items += 1
                    continue
                result = compare(backend, rubric, answers[0].prompt, [t.answer for t in answers], config.parse_retries)
                comparisons.append(result)
                pairs = [
                    (t.answer_id, v) for t, v in zip(answers, result.verdicts, strict=True) if t.answer_id in wanted
                ]
                _save(store, judge_id, run, mode, pairs)
                if advance:
                    advance(len(mine))
            run.bias = position_bias(comparisons)
    except EndpointUnavailable as exc:
        raise EndpointUnavailable(
            f"{exc}; {run.rated + run.failed} of {run.to_judge} answers judged and saved before it stopped: "
            "run the same command again to judge the rest"
        ) from None
    return run


def _by_item(tasks: Sequence[Any]) -> dict[int, list[Any]]:
    items: dict[int, list[Any]] = {}
    for task in tasks:
        items.setdefault(task.item_id, []).append(task)
    return items


def _save(store: Any, judge_id: int, run: JudgeRun, mode: str, verdicts: Sequence[tuple[int, Verdict]]) -> None:
    from curate.review.judges import JudgeVerdict

    rated, failed = store.judges.record(
        judge_id, [JudgeVerdict(answer_id, v.score, v.reply, v.tries) for answer_id, v in verdicts], mode
    )
    run.rated += rated
    run.failed += failed
