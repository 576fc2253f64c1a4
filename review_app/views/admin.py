"""Admin: progress and pace per labeler, rating distributions, agreement, bias, LLM judges against the people,
reward-model scores beside the answers, flagged items, exports. Admins only: labelers never see another's
rating, a judge's, or a score."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from curate.errors import CurateError
from curate.recipe import RatingsConfig
from curate.review.agreement import (
    judges_vs_humans,
    krippendorff_alpha,
    labeler_bias,
    pairwise_spearman,
    zscore_calibrate,
)
from curate.review.ratings import judge_gate
from curate.review_export import export_ratings, export_target, safe_name
from review_app import state

user = state.require_user()
if not user.is_admin:
    # Navigation never lists this page for labelers; this guards a direct URL as well (blind rating).
    st.error("The admin page is for admins only.")
    st.stop()
project = state.require_project()
store = state.store()


@st.cache_data(ttl=30, show_spinner="Reading ratings...")
def _snapshot(url: str, project: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, float, pd.DataFrame]:
    """Labeler stats, the people's ratings, every flag (open and cleared), alpha and Spearman among the people,
    read once per 30 s (or Refresh), not on every click. LLM judges are compared with the people in `_judges`."""
    ratings = store.reports.ratings_frame(project, actor=user.id)
    people = ratings[ratings["labeler_kind"] != "judge"]
    alpha = krippendorff_alpha(people) if len(people) else math.nan
    stats, flags = (
        store.reports.labeler_stats(project, actor=user.id),
        store.reports.flagged(project, history=True, actor=user.id),
    )
    return stats[stats["kind"] != "judge"], people, flags, alpha, pairwise_spearman(people)


@st.cache_data(ttl=30, show_spinner="Reading the judges and model scores...")
def _machines(url: str, project: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every rating with `labeler_kind` (people and judges), and the reward-model scores of the answers."""
    return store.reports.ratings_frame(project, actor=user.id), store.scores.frame(project, actor=user.id)


title_col, refresh_col = st.columns([5, 1], vertical_alignment="bottom")
title_col.title("Admin")
if refresh_col.button("Refresh", help="Figures are read at most 30 s ago; this reads them now."):
    _snapshot.clear()
    _machines.clear()
st.text(f"Project: {project}")  # names are shown as text, like everything people typed
stats, ratings, flags, alpha, spearman = _snapshot(store.db.url, project)
flagged, cleared = flags[flags["cleared_at"].isna()], flags.dropna(subset=["cleared_at"])

top = st.columns([1, 1, 2, 1])
top[0].metric("Ratings", len(ratings))
top[1].metric("Labelers", int((stats["done"] > 0).sum()) if len(stats) else 0)
top[2].metric(
    "Krippendorff's alpha (ordinal)",
    "n/a" if math.isnan(alpha) else f"{alpha:.3f}",
    help="1 = perfect agreement, 0 = chance. Krippendorff: rely on data with alpha >= 0.8, "
    "draw tentative conclusions at >= 0.667. n/a until two answers have two ratings each.",
)
top[3].metric("Flagged answers", flagged["answer_id"].nunique() if len(flagged) else 0)

st.subheader("Progress and pace")
if stats.empty:
    st.info("No labelers yet: add them with `curate review labeler add NAME`.")
else:
    table = stats.assign(
        progress=stats["done"] / stats["assigned"].where(stats["assigned"] > 0),
        minutes=stats["seconds_total"] / 60,
    )
    st.dataframe(
        table[
            ["labeler", "done", "assigned", "progress", "minutes", "seconds_per_rating", "ratings_per_hour"]
            + ["mean_rating", "bias"]
        ],
        hide_index=True,
        column_config={
            "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
            "minutes": st.column_config.NumberColumn("time spent (min)", format="%.1f"),
            "seconds_per_rating": st.column_config.NumberColumn("s / rating", format="%.1f"),
            "ratings_per_hour": st.column_config.NumberColumn("ratings / hour", format="%.0f"),
            "mean_rating": st.column_config.NumberColumn("mean rating", format="%.2f"),
            "bias": st.column_config.NumberColumn(
                "bias", format="%+.2f", help="Mean offset from the other labelers on the same answers."
            ),
        },
    )
    # One chart only: each Streamlit chart costs ~20 ms per rerun, and the table already shows progress.
    st.caption("Pace: seconds per rating (how long each labeler looks at an answer)")
    st.bar_chart(stats.set_index("labeler")["seconds_per_rating"], horizontal=True, height=60 + 36 * len(stats))


@st.fragment
def _distributions(ratings: pd.DataFrame) -> None:
    """Histograms and bias, raw or z-score calibrated (the toggle reruns only this part)."""
    calibrate = st.toggle(
        "z-score calibration",
        help="Put every labeler's ratings on the pooled scale (rating - own mean) / own std, "
        "so a harsh and a lenient labeler become comparable.",
    )
    shown = ratings
    if calibrate:
        calibrated = zscore_calibrate(ratings)
        shown = calibrated.assign(rating=calibrated["calibrated"].round().astype(int))
    counts = pd.crosstab(shown["rating"], shown["labeler"]).reindex(range(1, 11), fill_value=0)
    counts.index.name = "rating"
    dist_col, bias_col = st.columns([3, 2])
    dist_col.caption("How often each labeler gave each rating" + (" (calibrated, rounded)" if calibrate else ""))
    dist_col.bar_chart(counts, stack=False, height=280)
    bias = labeler_bias(shown).set_index("labeler")["bias"]
    bias_col.caption("Bias: mean offset from the others on shared answers" + (" (calibrated)" if calibrate else ""))
    bias_col.bar_chart(bias, height=280)


st.subheader("Rating distributions")
if ratings.empty:
    st.info("No ratings yet.")
else:
    _distributions(ratings)

st.subheader("Agreement")
if spearman.empty:
    st.info("Agreement needs at least two labelers rating the same answers.")
else:
    st.caption(
        "Pairwise Spearman's rho over the answers both labelers rated "
        "(empty below 3 shared answers). Per-labeler calibration does not change rho."
    )
    names = sorted(set(spearman["labeler_a"]) | set(spearman["labeler_b"]))
    matrix = pd.DataFrame(1.0, index=names, columns=names)
    for row in spearman.itertuples(index=False):
        matrix.loc[row.labeler_a, row.labeler_b] = matrix.loc[row.labeler_b, row.labeler_a] = row.spearman
    matrix_col, pairs_col = st.columns(2)
    matrix_col.dataframe(matrix.style.background_gradient(cmap="RdYlGn", vmin=-1, vmax=1).format("{:.2f}", na_rep="-"))
    pairs_col.dataframe(
        spearman, hide_index=True, column_config={"spearman": st.column_config.NumberColumn(format="%.3f")}
    )


def _judges(everyone: pd.DataFrame) -> None:
    """Each LLM judge against the people's consensus (the mean person's rating) on the answers both rated."""
    judges = judges_vs_humans(everyone) if len(everyone) else pd.DataFrame()
    if judges.empty:
        st.caption("No LLM judge has rated this project (`curate review judge --project P --model M`).")
        return
    rules = RatingsConfig()
    verdicts = [
        judge_gate(int(row.n_shared), None if math.isnan(row.alpha) else float(row.alpha), rules)
        for row in judges.itertuples(index=False)
    ]
    table = judges.assign(counts=[("yes: " if ok else "no: ") + why for ok, why in verdicts])
    st.caption(
        "A judge is one more rater; exports count its ratings only when it agrees with the people "
        f"(alpha >= {rules.judge_min_alpha:g} on >= {rules.judge_min_items} shared answers, by default)."
    )
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "n_shared": st.column_config.NumberColumn("shared answers"),
            "alpha": st.column_config.NumberColumn("alpha (interval)", format="%.3f"),
            "spearman": st.column_config.NumberColumn("Spearman", format="%.3f"),
            "mean_offset": st.column_config.NumberColumn(
                "mean offset", format="%+.2f", help="Judge minus the people's mean on the same answers."
            ),
            "counts": "counts in exports",
        },
    )


@st.fragment
def _model_scores(everyone: pd.DataFrame, scores: pd.DataFrame) -> None:
    """A reward run's score beside each answer, with the people's and the judges' mean ratings (admins only)."""
    if scores.empty:
        st.caption("No model scores yet: `train score RUN --project P` stores a reward run's score of every answer.")
        return
    source = st.selectbox("Reward run", sorted(set(scores["source"])))
    shown = scores[scores["source"] == source].set_index("answer_id")[["prompt", "response", "model", "score"]]
    means = pd.DataFrame(index=shown.index, columns=["human", "judge"], dtype=float)
    if len(everyone):
        means = everyone.pivot_table(index="answer_id", columns="labeler_kind", values="rating", aggfunc="mean")
    table = shown.join(means.reindex(columns=["human", "judge"]).rename(columns={"human": "people", "judge": "judges"}))
    rated = table.dropna(subset=["people"])
    if len(rated) >= 3 and rated["score"].nunique() > 1 and rated["people"].nunique() > 1:
        rho = rated["score"].rank().corr(rated["people"].rank())
        st.caption(f"Spearman of {source}'s scores vs the people's mean rating: {rho:.3f} ({len(rated)} answers)")
    st.dataframe(
        table.reset_index(drop=True),
        hide_index=True,
        column_config={
            "people": st.column_config.NumberColumn("people (mean)", format="%.2f"),
            "judges": st.column_config.NumberColumn("judges (mean)", format="%.2f"),
            "score": st.column_config.NumberColumn(f"{source} score", format="%.3f"),
        },
    )


everyone, scores = _machines(store.db.url, project)
st.subheader("LLM judges")
_judges(everyone)
st.subheader("Model scores")
_model_scores(everyone, scores)


def _clear_flag(flag_id: int) -> None:
    """Clear one flag (the store keeps it as history) and read the figures afresh."""
    try:
        store.clear_flag(user.id, flag_id)
    except CurateError as exc:
        st.session_state["flag_notice"] = ("error", str(exc))
    else:
        st.session_state["flag_notice"] = ("success", f"Cleared flag {flag_id}: its answer counts in exports again.")
    _snapshot.clear()


st.subheader("Flagged items")
if notice := st.session_state.pop("flag_notice", None):
    (st.error if notice[0] == "error" else st.success)(notice[1])
if flagged.empty:
    st.caption("Nothing flagged.")
else:
    st.caption("Flagged answers stay out of every export until an admin clears the flag.")
    # st.dataframe shows cells as plain text: prompts, answers and reasons are never rendered as HTML.
    st.dataframe(
        flagged[["flag_id", "prompt", "response", "model", "labeler", "reason", "created_at"]], hide_index=True
    )
    for flag in flagged.itertuples(index=False):
        text_col, button_col = st.columns([6, 1], vertical_alignment="center")
        text_col.text(f"Flag {flag.flag_id} by {flag.labeler}: {flag.reason}")
        button_col.button(
            "Clear flag",
            key=f"clear-flag-{flag.flag_id}",
            on_click=_clear_flag,
            args=(int(flag.flag_id),),
            help="The answer is fine after all: it counts in exports again. The flag stays in the history.",
        )
with st.expander("Cleared flags (history)"):
    if cleared.empty:
        st.caption("No flag cleared yet.")
    else:
        st.dataframe(
            cleared[["flag_id", "prompt", "response", "labeler", "reason", "created_at", "cleared_by", "cleared_at"]],
            hide_index=True,
        )


@st.fragment
def _export() -> None:
    """Export buttons: SFT / preference / reward sets (`curate.review_export`) under the server's export directory."""
    defaults, root = RatingsConfig(), state.export_root()
    with st.form("export"):
        name = st.text_input(
            "Export name",
            value=safe_name(project),
            key="export_name",
            help=f"A folder name under {root} (set with `curate review serve --export-dir`); "
            "each button adds -sft, -preference or -reward.",
        )
        min_col, gap_col = st.columns(2)
        min_rating = min_col.number_input("SFT: min mean rating", 1.0, 10.0, defaults.min_rating, 0.5)
        min_gap = gap_col.number_input("Preference: min rating gap", 0.0, 9.0, defaults.min_gap, 0.5)
        buttons = st.columns(3)
        kinds = {
            "sft": buttons[0].form_submit_button("Export SFT set"),
            "preference": buttons[1].form_submit_button("Export preference pairs"),
            "reward": buttons[2].form_submit_button("Export reward data"),
        }
    for kind, pressed in kinds.items():
        if not pressed:
            continue
        try:
            named = export_target(root, name.strip())
            out = named.with_name(f"{named.name}-{kind}")
            with st.spinner(f"Writing the {kind} export..."):
                rules = defaults.model_copy(update={"min_rating": min_rating, "min_gap": min_gap})
                result = export_ratings(store, project, out, kind, ratings=rules, actor=user.id)
        except CurateError as exc:
            st.error(str(exc))
        except OSError as exc:  # e.g. the export directory is read-only or on a full disk
            st.error(f"cannot write the export under {root}: {exc.strerror or exc}")
        else:
            splits = result.manifest.counts.splits
            rows = ", ".join(f"{split} {n} rows" for split, n in splits.items())
            st.success(f"Wrote {result.out} ({rows})")


st.subheader("Export")
st.caption(
    f"Writes an export directory like `curate build` under {state.export_root()} "
    "(flagged answers left out; split grouped by prompt)."
)
_export()
