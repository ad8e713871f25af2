"""The daily fact against the replay world's ground truth: every count column of `fct_title_daily_engagement` equals
the same count over the comments the world generated (words: the written definition applied to their texts)."""
import datetime as dt
import re

import numpy as np
import pandas as pd
import pytest

from trakt_nb.land.bronze import connect
from trakt_nb.land.ledger import get_state
from trakt_nb.config import load_settings
from trakt_nb.land.ingest import ingest
from trakt_nb.model.build import build_model
from trakt_nb.source.replay_world import WorldSpec, get_world
from trakt_nb.source.replay_as_of import ground_truth

REPLAY = {"seed": 5, "movies": 3, "shows": 2, "users": 300, "comments_per_title": 300}
D = dt.date(2026, 7, 10)
KEY = ["title_kind", "title_id_trakt", "day"]
_WS = re.compile(r"[ \t\n\r\f\x0B]+")
_TAG = re.compile(r"\[/?spoiler\]", re.I)


def words_by_definition(text: str) -> int:
    "The definition of a word in 10_silver, written again independently: ASCII-whitespace runs, spoiler tags and `Edit:` markers out."
    return sum(1 for w in _WS.split(_TAG.sub(" ", text)) if w and w.lower() != "edit:")


def test_definition_examples():
    assert words_by_definition("Loved it [spoiler]he dies[/spoiler] Edit: twice") == 5
    assert words_by_definition("déjà\u00a0vu @movienerd :fire: 10/10\r\n") == 4


@pytest.mark.slow
def test_fact_equals_ground_truth(tmp_path):
    s = load_settings(env={}).replace(storage={"warehouse": tmp_path / "w.duckdb"}, replay=REPLAY, titles={"trending_top_n": 2},
                                      client={"backoff_base_s": 0.01, "backoff_cap_s": 0.05})
    assert ingest(s, D, in_process=True, progress=False).status == "succeeded"
    build_model(s, D)
    con = connect(s, read_only=True)
    try:
        ids = [r["trakt"] for r in get_state(con, "followed_titles")]
        fact = con.sql("SELECT * EXCLUDE (as_of_date, rating_mean) FROM gold.fct_title_daily_engagement WHERE comments > 0").df()
    finally:
        con.close()
    w = get_world(WorldSpec(**REPLAY))
    g = ground_truth(w, D, titles=[int(i) for i in np.flatnonzero(w.titles.trakt.isin(ids))], text=True)
    rows = np.array([w.row_of(int(i)) for i in g.comment_id])
    shown = w.c["has_user_rating"][rows] | w.c["has_stats"][rows]  # a rating the API shows (as user_rating or in user_stats)
    g = g.assign(user_rating=g.user_rating.where(shown))
    g = g.assign(day=g.created_at.dt.date, top=g.parent_id == 0, reply=g.parent_id != 0, reviewish=g.review,
                 spoilerish=g.spoiler | g.comment.str.lower().str.contains("[spoiler]", regex=False),
                 text_words=g.comment.map(words_by_definition), rating=g.user_rating.astype("float64"))
    want = g.groupby(KEY).agg(comments=("comment_id", "size"), top_level_comments=("top", "sum"), replies_posted=("reply", "sum"),
                              reviews=("reviewish", "sum"), spoilers=("spoilerish", "sum"), distinct_commenters=("user_slug", "nunique"),
                              likes=("likes", "sum"), replies_received=("replies", "sum"), words=("text_words", "sum"),
                              rating_sum=("rating", "sum"), rating_count=("rating", "count")).reset_index()
    fact["day"] = pd.to_datetime(fact.day).dt.date
    got = fact.set_index(KEY).sort_index()
    want = want.set_index(KEY).sort_index().astype("int64")
    assert len(want) > 50 and got.index.equals(want.index)
    cols = [c for c in want.columns]
    assert len(cols) == 11
    equal = [c for c in cols if (got[c].astype("int64") == want[c]).all()]
    assert equal == cols, f"{len(equal)} of 11 fact columns equal the ground truth; differ: {sorted(set(cols) - set(equal))}"
    # the world's own word counts differ from the texts it writes only where its vocabulary puts a space inside one entry ("déjà vu")
    generated = g.groupby(KEY).words.sum().reindex(want.index)
    inside = g.comment.str.count("(?i)déjà vu").groupby([g[k] for k in KEY]).sum().reindex(want.index)
    assert (want.words - generated == inside).all()
