"""What an as-of date costs in the semantic layer: the daily fact is stored as of its newest day only, so an earlier
as-of is computed from silver's comment history. Times `query` at the stored as-of and at an as-of a week earlier
(median of 5) on the warehouse the daily run writes, and measures what storing the fact once more per as-of date
would add to the file (on a copy). Run `trakt-nb run` first."""
import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
import time

import duckdb

from trakt_nb.config import load_settings
from trakt_nb.model.semantic import as_of_dates, query


def _median_s(f, k=5):
    xs = []
    for _ in range(k):
        t0 = time.perf_counter(); f(); xs.append(time.perf_counter() - t0)
    return statistics.median(xs)


def main() -> int:
    path = load_settings().storage.warehouse
    if not path.exists():
        print(f"no warehouse at {path}; run `trakt-nb run` first, then this benchmark"); return 0
    con = duckdb.connect(str(path), read_only=True)
    fact = "gold.fct_title_daily_engagement"
    day = as_of_dates(con, fact)[-1]
    rows = con.sql(f"SELECT count(*) FROM {fact}").fetchone()[0]
    hist = con.sql("SELECT count(*) FROM silver.stg_trakt__comment_event_history").fetchone()[0]
    ask = lambda d: query(con, ["comments", "mean_user_rating"], by=["title"], as_of=d).to_pandas()
    stored, computed = _median_s(lambda: ask(day)), _median_s(lambda: ask(day - dt.timedelta(days=7)))
    con.close()
    with tempfile.TemporaryDirectory() as tmp:
        copy = os.path.join(tmp, "w.duckdb")
        shutil.copy(path, copy)
        with duckdb.connect(copy) as c: c.execute("CHECKPOINT")
        before = os.path.getsize(copy)
        with duckdb.connect(copy) as c:
            c.execute(f"INSERT INTO {fact} SELECT * REPLACE (DATE '{day - dt.timedelta(days=7)}' AS as_of_date) FROM {fact}")
            c.execute("CHECKPOINT")
        extra = os.path.getsize(copy) - before
    print(f"fact: {rows:,} title-days as of {day}; silver history {hist:,} comment versions; warehouse {before / 1e6:.1f} MB")
    print(f"query at the stored as-of {stored * 1e3:.0f} ms; a week earlier, computed from silver {computed * 1e3:.0f} ms (median of 5)")
    print(f"storing the fact once more per as-of date would add {extra / 1e6:.2f} MB per day")
    return 0


if __name__ == "__main__":
    sys.exit(main())
