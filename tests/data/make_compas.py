"""Rebuild tests/data/compas.csv.gz from ProPublica's compas-scores-two-years.csv.

Run from the repository root:
    python tests/data/make_compas.py ../shared/data/compas/compas-scores-two-years.csv
Keeps 9 of the 53 columns (no identifiers), every row, in the original order.
"""

import gzip
import sys

import pandas as pd

COLUMNS = ["sex", "race", "age_cat", "decile_score", "score_text", "two_year_recid",
           "days_b_screening_arrest", "is_recid", "c_charge_degree"]

if __name__ == "__main__":
    frame = pd.read_csv(sys.argv[1])[COLUMNS]
    with open("tests/data/compas.csv.gz", "wb") as raw, gzip.GzipFile(
            fileobj=raw, mode="wb", mtime=0, filename="") as out:
        out.write(frame.to_csv(index=False, lineterminator="\n").encode())
