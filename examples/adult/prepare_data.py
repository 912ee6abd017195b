"""Make the bundled Adult census files from the UCI originals in ../shared/data/adult.

Run from the repository root:  python examples/adult/prepare_data.py [SOURCE_DIR]

Changes to the originals, and nothing else: a header row (hyphens in names become
underscores), `?` (unknown) written as an empty field, the first line of adult.test
dropped and the trailing `.` of its labels removed. Output is gzip'd CSV with a fixed
timestamp, so the files are byte-for-byte reproducible.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import pandas as pd

COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status",
    "occupation", "relationship", "race", "sex", "capital_gain", "capital_loss",
    "hours_per_week", "native_country", "income",
]
HERE = Path(__file__).parent
DEFAULT_SOURCE = HERE.parents[2] / "shared" / "data" / "adult"


def read_split(path: Path, skip_first_line: bool) -> pd.DataFrame:
    frame = pd.read_csv(path, header=None, names=COLUMNS, skipinitialspace=True,
                        na_values=["?"], skiprows=1 if skip_first_line else 0)
    frame["income"] = frame["income"].str.rstrip(".")
    return frame


def write_csv_gz(frame: pd.DataFrame, path: Path) -> None:
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0,
                                               filename="") as out:
        out.write(frame.to_csv(index=False, lineterminator="\n").encode())


def main(source: Path = DEFAULT_SOURCE) -> None:
    (HERE / "data").mkdir(exist_ok=True)
    for name, skip in (("adult.data", False), ("adult.test", True)):
        frame = read_split(source / name, skip)
        target = HERE / "data" / f"adult-{'train' if name == 'adult.data' else 'test'}.csv.gz"
        write_csv_gz(frame, target)
        print(f"{target}: {len(frame)} rows")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SOURCE)
