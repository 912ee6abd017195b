"""Spark datasets: the same policy where the rows live in Spark (docs/spark.md).

Imported only when a policy names a `spark:` source (or a caller asks for a profile of a
Spark DataFrame); PySpark itself only inside the functions that use it. Only the
DataFrame API is used, so a Spark Connect session (`sc://`) works as a local or a cluster
one does. The rows never come to the driver: it receives counts, a seeded sample of about
SAMPLE_POINTS values per numeric column (only to place the points counts are taken at),
and, to place the reference-quantile bin edges exactly, the values of at most
EXACT_SLICE rows around each edge.

Drift on Spark computes the same statistics as the local engine (mlcheck/checks/drift.py):
- counts, missing shares, category counts, bin edges at reference quantiles (numpy's
  linear interpolation, found exactly), bin counts, and so PSI, Jensen-Shannon,
  chi-square and the binned tests are identical to the local engine's;
- KS and Wasserstein read both distribution functions counted exactly at a grid of
  points (the values of a seeded sample of each side, minima and maxima). Between two
  grid points each function is bounded by its values at them, which bounds the
  statistic: the evidence reports [lower, upper], and the check is judged on the upper
  end, so the approximation can raise a false alarm but never hide drift.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import sys
from typing import Any

import numpy as np

from mlcheck.errors import CheckError, InputError

INSTALL = 'install the Spark extra: pip install "mlcheck-gate[spark]" (Spark also needs Java 17+)'
SAMPLE_POINTS = 20_000  # rows sampled per side to place the grid (counts stay exact)
SAMPLE_SEED = 17
PROFILE_POINTS = 1001  # quantiles a profile keeps per numeric column (drift.SKETCH_POINTS)
EXACT_SLICE = 50_000  # values collected at most around one exact quantile
DIGEST = ("sha256 over the Spark schema (JSON) of the columns read, the row count and the "
          "sum of xxhash64 of every row (order-independent)")


def pyspark() -> Any:
    """The pyspark.sql module, or a clear error saying what to install."""
    import warnings

    from mlcheck.checks.schema import PYSPARK_PANDAS_WARNING

    warnings.filterwarnings("ignore", message=PYSPARK_PANDAS_WARNING)  # see schema.pandera
    try:
        import pyspark.sql
    except ImportError:
        raise InputError(f"a dataset is a Spark source, but PySpark is not installed: "
                         f"{INSTALL}") from None
    return pyspark.sql


def session() -> Any:
    """The active SparkSession, else one built from the standard settings: SPARK_REMOTE
    (`sc://host`) for Spark Connect, `spark.master` from spark-defaults.conf or
    PYSPARK_SUBMIT_ARGS, else local mode."""
    sql = pyspark()
    active = sql.SparkSession.getActiveSession()
    if active is not None:
        return active
    if not os.environ.get("SPARK_REMOTE"):  # local Python workers: this interpreter
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    built = sql.SparkSession.builder.appName("mlcheck").getOrCreate()
    with contextlib.suppress(Exception):  # ours: errors only (Spark Connect has no context)
        built.sparkContext.setLogLevel("ERROR")
    return built


# ------------------------------------------------------------------ loading

def check_supported(policy: Any, names: list[str]) -> None:
    """What reads a Spark dataset row by row (explanations, property searches, drift's
    `prediction: true`) stops the run before anything is read, naming the section and
    what to do instead (never a silent pass). Schema, performance, fairness and drift run
    on Spark; a `sample:` on the dataset brings a seeded sample to the driver instead."""
    where = policy.origin.locate
    uses = []
    for section in ("explainability", "robustness"):
        spec = getattr(policy, section)
        if spec is not None and spec.dataset in names:
            uses.append((spec.dataset, f"{section} reads it row by row",
                         where(section, "dataset")))
    drift = policy.drift
    if drift is not None and drift.prediction:
        uses += [(name, "drift's `prediction: true` scores it with the model",
                  where("drift", "prediction")) for name in (drift.reference, drift.current)
                 if name in names]
    if uses:
        name, reason, location = uses[0]
        raise InputError(f"dataset '{name}' is a Spark source and {reason}, which does not "
                         "run on Spark: declare `sample: {rows: N, seed: S}` on a dataset of "
                         "the same source to run it on a seeded sample (docs/spark.md)",
                         location)
    pyspark()


def load_dataset(policy: Any, name: str, needed: Any, given: Any = None) -> Any:
    """Open a Spark source (lazily: no rows are read), or take a Spark DataFrame passed to
    mlcheck.evaluate, keep the columns the run needs, and fingerprint it with one
    aggregate pass (row count and a content digest)."""
    from mlcheck.subject import IN_MEMORY, Artifact, LoadedDataset, _check_pin

    spec = policy.data.datasets[name]
    source = spec.spark
    where = policy.origin.locate("data", "datasets", name, "spark")
    if given is not None:
        shown = f"DataFrame {IN_MEMORY}"
    else:
        shown = f"table {source.table}" if source.table else \
            f"{source.format} at {source.path}"
    try:
        if given is not None:
            frame = given
        elif source.table:
            frame = session().read.table(source.table)
        else:
            frame = session().read.format(source.format).options(**source.options).load(
                _resolve(policy, source.path))
        columns = list(frame.columns)
    except Exception as exc:  # AnalysisException and friends: a missing table or path
        raise InputError(f"dataset '{name}': Spark cannot read {shown}: "
                         f"{first_line(exc)}", where) from None
    chosen = needed.select(columns)
    source = frame
    if chosen is not None:
        frame = frame.select(*[_quoted(c) for c in chosen])
    rows, digest = fingerprint(frame)
    if rows == 0:
        raise InputError(f"dataset '{name}' (Spark {shown}) has no rows", where)
    artifact = Artifact(IN_MEMORY if given is not None else f"spark: {shown}", digest, 0)
    _check_pin(artifact, spec.sha256, f"dataset '{name}'",
               policy.origin.locate("data", "datasets", name, "sha256"))
    import pandas as pd

    if spec.sample is not None:  # the sample's rows come to the driver: a pandas dataset
        from mlcheck.inputs import DATASET_ROWS
        from mlcheck.subject import _strata

        if min(spec.sample.rows, rows) > DATASET_ROWS.value():
            raise InputError(DATASET_ROWS.exceeded(
                f"dataset '{name}': its sample", f"has {min(spec.sample.rows, rows):,} "
                "rows").message, policy.origin.locate("data", "datasets", name, "sample"))
        try:
            sample = draw_sample(source, spec.sample.rows, spec.sample.seed, _strata(policy),
                                 keep=list(frame.columns))
        except Exception as exc:  # the driver's result size, a lost executor, …
            raise InputError(f"dataset '{name}': Spark could not draw its sample from "
                             f"{shown}: {first_line(exc)}", where) from None
        return LoadedDataset(name, sample, artifact, len(columns), digest_method=DIGEST,
                             sample={"rows": len(sample), "of": rows,
                                     "seed": spec.sample.seed, "method": SAMPLE_METHOD})
    return LoadedDataset(name, pd.DataFrame(columns=list(frame.columns)), artifact,
                         len(columns), digest_method=DIGEST, spark=frame, rows=rows)


SAMPLE_METHOD = ("drawn on Spark: the rows with the smallest xxhash64 of (seed, row), "
                 "per target class in proportion to its rows for classification")


def draw_sample(frame: Any, rows: int, seed: int, strata: str | None = None,
                keep: list[str] | None = None) -> Any:
    """A seeded sample of exactly `rows` rows (all of them when there are fewer), the same
    whatever the partitioning and whichever columns a policy reads (`keep`): the rows
    with the smallest hash of (seed, every column of the row), found with a top-k per
    partition; with `strata` (the target of a classification), each class keeps its share
    of the rows by largest remainder, as a local sample does."""
    from pyspark.sql import Window

    functions = pyspark().functions
    key, rank_name = "__sample_key", "__sample_rank"
    while key in frame.columns or rank_name in frame.columns:  # never a data column's name
        key, rank_name = key + "_", rank_name + "_"
    keyed = frame.withColumn(key, functions.xxhash64(
        functions.lit(seed), *[_quoted(c) for c in frame.columns]))
    keyed = keyed.select(*[_quoted(c) for c in (keep or frame.columns)], key)
    if strata is None or strata not in frame.columns:
        picked = keyed.orderBy(key).limit(rows)
    else:
        counts = {row[0]: int(row[1]) for row in frame.groupBy(_quoted(strata)).count()
                  .collect()}
        total = sum(counts.values())
        if rows >= total:
            picked = keyed
        else:
            labels = sorted(counts, key=lambda v: (v is None, str(v)))
            exact = np.array([counts[v] * rows / total for v in labels])
            quota = np.floor(exact).astype(np.int64)
            by_remainder = np.lexsort((np.arange(len(labels)), quota - exact))
            quota[by_remainder[:rows - int(quota.sum())]] += 1
            limit = functions.lit(0)
            for value, q in zip(labels, quota, strict=True):
                match = _quoted(strata).isNull() if value is None else \
                    _quoted(strata) == functions.lit(value)
                limit = functions.when(match, int(q)).otherwise(limit)
            rank = functions.row_number().over(Window.partitionBy(_quoted(strata))
                                               .orderBy(key))
            picked = keyed.withColumn(rank_name, rank).where(functions.col(rank_name) <= limit)
    table = picked.orderBy(key).drop(key, rank_name).toArrow()
    return table.to_pandas()


def _resolve(policy: Any, path: str) -> str:
    """A path without a scheme is relative to the policy file, like every other path."""
    if "://" in path or path.startswith("/") or ":" in path.split("/")[0]:
        return path
    return str((policy.base_dir / path).resolve())


def first_line(exc: BaseException) -> str:
    """The line of a Spark error that says what went wrong (Py4J's first line only says
    which call failed)."""
    text = [line.strip(" :") for line in str(exc).strip().splitlines() if line.strip(" :")]
    if len(text) > 1 and text[0].startswith("An error occurred while calling"):
        text = text[1:]
    return text[0][:300] if text else type(exc).__name__


def fingerprint(frame: Any) -> tuple[int, str]:
    """Row count and an order-independent content digest, in one pass."""
    functions = pyspark().functions
    row = frame.agg(functions.count(functions.lit(1)).alias("rows"), functions.sum(
        functions.xxhash64(*[_quoted(c) for c in frame.columns]).cast("decimal(38,0)")
    ).alias("hash")).first()
    digest = hashlib.sha256(json.dumps(frame.schema.jsonValue(), sort_keys=True).encode())
    digest.update(f"{row['rows']}:{row['hash']}".encode())
    return int(row["rows"]), digest.hexdigest()


# ------------------------------------------------------------------ columns

def _quoted(name: str) -> Any:
    """A column by its exact name (dots and spaces included)."""
    return pyspark().functions.col("`" + name.replace("`", "``") + "`")


NUMERIC_TYPES = ("ByteType", "ShortType", "IntegerType", "LongType", "FloatType", "DoubleType")
TIME_TYPES = ("TimestampType", "TimestampNTZType")


def _type_name(frame: Any, column: str) -> str:
    return type(frame.schema[column].dataType).__name__


def is_numeric_column(frame: Any, column: str) -> bool:
    """As the local engine reads the same data through pandas: integers, floats and
    timestamps are numbers; booleans, text, dates and decimals are categories."""
    if column not in frame.columns:
        raise CheckError(f"column '{column}' not found in the Spark dataset")
    return _type_name(frame, column) in NUMERIC_TYPES + TIME_TYPES


def _number(frame: Any, column: str) -> Any:
    """A numeric column as double, null where the local engine sees a missing value (null
    or NaN); timestamps as seconds since 1970 (UTC)."""
    functions = pyspark().functions
    value = _quoted(column)
    if _type_name(frame, column) in TIME_TYPES:
        return functions.unix_micros(value.cast("timestamp")) / 1e6
    value = value.cast("double")
    return functions.when(~functions.isnan(value), value)


# ------------------------------------------------------------------ sketches and counts

def _summaries(frame: Any, columns: list[str]) -> dict[str, dict]:
    """Per numeric column: values, missing, min, max and population std (one aggregate
    pass), and the grid's points: the distinct values of a seeded sample of about
    SAMPLE_POINTS rows (one sampling pass; every value when there are fewer rows). The
    sample only places the grid: every statistic is then counted exactly at it."""
    functions = pyspark().functions
    aggregates = [functions.count(functions.lit(1)).alias("__rows")]
    for i, column in enumerate(columns):
        x = _number(frame, column)
        aggregates += [functions.count(x).alias(f"n{i}"), functions.min(x).alias(f"lo{i}"),
                       functions.max(x).alias(f"hi{i}"),
                       functions.stddev_pop(x).alias(f"sd{i}")]
    row = frame.agg(*aggregates).first()
    rows = int(row["__rows"])
    projected = frame.select(*[_number(frame, c).alias(f"x{i}") for i, c in enumerate(columns)])
    if rows > SAMPLE_POINTS:
        projected = projected.sample(False, SAMPLE_POINTS / rows, seed=SAMPLE_SEED)
    sample = projected.toArrow()
    out = {}
    for i, column in enumerate(columns):
        values = int(row[f"n{i}"])
        points = sample.column(f"x{i}").to_numpy(zero_copy_only=False).astype(float)
        out[column] = {"rows": rows, "values": values, "missing": rows - values,
                       "min": row[f"lo{i}"], "max": row[f"hi{i}"],
                       "std": float(row[f"sd{i}"] or 0.0),
                       "sketch": np.unique(points[~np.isnan(points)])}
    return out


def _atoms(frame: Any, columns: list[str], grids: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Exact counts of each column's values at and between its grid points, counted on the
    executors: atom 2j is the open interval below grid[j], atom 2j+1 the point grid[j]
    (the last atom: above the last point). Only the non-zero counts come back."""
    import pandas as pd

    functions = pyspark().functions
    names = [f"x{i}" for i in range(len(columns))]
    projected = frame.select(*[_number(frame, c).alias(n) for c, n in
                               zip(columns, names, strict=True)])
    points = [np.asarray(grids[c], dtype=float) for c in columns]

    def count(batches: Any) -> Any:
        for batch in batches:
            for i, name in enumerate(names):
                values = batch[name].to_numpy(dtype=float)
                values = values[~np.isnan(values)]
                grid = points[i]
                at = np.searchsorted(grid, values, "left")
                exact = (at < len(grid)) & (grid[np.minimum(at, len(grid) - 1)] == values)
                counts = np.bincount(2 * at + exact, minlength=2 * len(grid) + 1)
                found = np.flatnonzero(counts)
                yield pd.DataFrame({"c": np.full(len(found), i, dtype=np.int32),
                                    "atom": found.astype(np.int64),
                                    "n": counts[found].astype(np.int64)})

    rows = (projected.mapInPandas(count, "c int, atom long, n long")
            .groupBy("c", "atom").agg(functions.sum("n").alias("n")).collect())
    out = {c: np.zeros(2 * len(points[i]) + 1, dtype=np.int64) for i, c in enumerate(columns)}
    for row in rows:
        out[columns[row["c"]]][row["atom"]] += row["n"]
    return out


def _order_statistics(frame: Any, wanted: dict[str, list[int]],
                      summaries: dict[str, dict] | None = None, depth: int = 0
                      ) -> dict[str, dict[int, float]]:
    """The values at 0-based ranks of each column's sorted non-missing values, exactly:
    count at each column's sketch grid (one pass for all columns), then collect the few
    values of the intervals that hold a rank (one pass), or narrow an interval again
    when it holds more than EXACT_SLICE values."""
    columns = list(wanted)
    summaries = summaries or _summaries(frame, columns)
    grids = {c: _grid([summaries[c]]) for c in columns}
    atoms = _atoms(frame, columns, grids)
    found: dict[str, dict[int, float]] = {c: {} for c in columns}
    collect: dict[str, dict[int, list]] = {c: {} for c in columns}  # atom -> (rank, offset)
    for column in columns:
        grid, cumulative = grids[column], np.cumsum(atoms[column])
        for rank in wanted[column]:
            atom = int(np.searchsorted(cumulative, rank, "right"))
            if atom % 2:  # a grid point holds this rank
                found[column][rank] = float(grid[atom // 2])
                continue
            offset = rank - int(cumulative[atom - 1])
            low, high = float(grid[atom // 2 - 1]), float(grid[atom // 2])
            if cumulative[atom] - cumulative[atom - 1] > EXACT_SLICE and depth < 8:
                x = _number(frame, column)
                inside = frame.where((x > low) & (x < high))
                found[column][rank] = _order_statistics(
                    inside, {column: [offset]}, depth=depth + 1)[column][offset]
            else:
                collect[column].setdefault(atom, []).append((rank, offset))
    if any(collect.values()):
        functions = pyspark().functions
        picks, names = [], []
        for i, column in enumerate(c for c in columns if collect[c]):
            x, grid = _number(frame, column), grids[column]
            inside = functions.lit(False)
            for atom in collect[column]:
                inside = inside | ((x > float(grid[atom // 2 - 1])) & (x < float(grid[atom // 2])))
            picks.append(functions.when(inside, x).alias(f"v{i}"))
            names.append(column)
        condition = functions.lit(False)
        for pick in names:
            condition = condition | functions.col(f"v{names.index(pick)}").isNotNull()
        table = frame.select(*picks).where(condition).toArrow()  # columnar: 8 bytes a value
        for i, column in enumerate(names):
            values = table.column(f"v{i}").to_numpy(zero_copy_only=False)
            values = np.sort(values[~np.isnan(values)].astype(float))
            grid = grids[column]
            for atom, ranks in collect[column].items():
                low, high = grid[atom // 2 - 1], grid[atom // 2]
                between = values[(values > low) & (values < high)]
                found[column].update({rank: float(between[offset]) for rank, offset in ranks})
    return found


def _grid(summaries: list[dict]) -> np.ndarray:
    """Sorted distinct points: every side's quantile sketch, minimum and maximum."""
    parts = [s["sketch"] for s in summaries]
    parts += [np.array([s[k]], dtype=float) for s in summaries for k in ("min", "max")
              if s[k] is not None]
    return np.unique(np.concatenate(parts)) if parts else np.array([])


def quantile_edges(frame: Any, values: dict[str, int], bins: int,
                   summaries: dict[str, dict] | None = None) -> dict[str, np.ndarray]:
    """Per column, np.unique(np.quantile(sorted values, inner bin probabilities)) found
    exactly (numpy's default linear interpolation) without bringing the column to the
    driver. `values`: each column's number of non-missing values."""
    plans, wanted = {}, {}
    for column, n in values.items():
        indexes = (n - 1) * np.linspace(0, 1, bins + 1)[1:-1]
        floors = np.floor(indexes).astype(np.int64)
        ceils = np.minimum(floors + 1, n - 1)
        plans[column] = (indexes, floors, ceils)
        wanted[column] = sorted(set(floors.tolist()) | set(ceils.tolist()))
    at = _order_statistics(frame, wanted, summaries) if wanted else {}
    edges = {}
    for column, (indexes, floors, ceils) in plans.items():
        found = at[column]
        edges[column] = np.unique(np.asarray([
            np.quantile([found[int(f)], found[int(c)]], h - f)
            for h, f, c in zip(indexes, floors, ceils, strict=True)], dtype=float))
    return edges


# ------------------------------------------------------------------ distribution functions

class Side:
    """One side's distribution function, known exactly at grid points: from a Spark
    column's atom counts, or from a sample held by the driver (a profile's sketch)."""

    def __init__(self, grid: np.ndarray, atoms: np.ndarray | None = None,
                 sample: np.ndarray | None = None) -> None:
        if sample is not None:  # every value is a grid point: nothing between them
            atoms = np.zeros(2 * len(grid) + 1, dtype=np.int64)
            at = np.searchsorted(grid, sample, "left")
            np.add.at(atoms, 2 * at + 1, 1)
        cumulative = np.cumsum(atoms)
        self.total = int(cumulative[-1])
        self.at = cumulative[1::2] / self.total  # F(g): share <= g
        self.below = cumulative[0:-1:2] / self.total  # F(g-): share < g
        self.between = atoms[0:-1:2] > 0  # values strictly between grid[j-1] and grid[j]
        self.cumulative = cumulative

    def count_at_or_below(self, grid: np.ndarray, edges: np.ndarray) -> np.ndarray:
        return self.cumulative[2 * np.searchsorted(grid, edges) + 1]


def ks_wasserstein_bounds(grid: np.ndarray, ref: Side, cur: Side
                          ) -> tuple[tuple[float, float], tuple[float, float]]:
    """Bounds on the KS statistic and the (unnormalised) first Wasserstein distance from
    the two distribution functions counted exactly at the grid points: at and just below
    each point the gap is exact; between two points each function stays between its
    values at them."""
    exact = np.abs(ref.at - cur.at)
    ks_low = float(max(exact.max(), np.abs(ref.below - cur.below).max()))
    low_r, low_c = ref.at[:-1], cur.at[:-1]  # just after grid[j-1]
    high_r, high_c = ref.below[1:], cur.below[1:]  # just before grid[j]
    mass = ref.between[1:] | cur.between[1:]
    upper = np.maximum(high_r - low_c, high_c - low_r)
    lower = np.maximum(0, np.maximum(low_r - high_c, low_c - high_r))
    width = np.diff(grid)
    w_low = float(np.sum(np.where(mass, lower, exact[:-1]) * width))
    w_high = float(np.sum(np.where(mass, upper, exact[:-1]) * width))
    ks_high = float(max(ks_low, upper[mass].max() if mass.any() else 0.0))
    return (ks_low, ks_high), (w_low, w_high)


# ------------------------------------------------------------------ drift

def _side_frame(context: Any, dataset: str) -> Any:
    """A side's Spark DataFrame (a pandas side of a mixed section is handed to Spark)."""
    spark = context.spark_frame(dataset)
    return spark if spark is not None else session().createDataFrame(context.frame(dataset))


def drift_statistics(context: Any, spec: Any) -> dict[str, Any]:
    """Every drift statistic of the section's columns, in the local engine's form (plus a
    `sketch` entry for numeric columns); a column that cannot be measured maps to its
    CheckError. A failed Spark job is every check's error, remembered, not retried."""
    try:
        return _drift_statistics(context, spec)
    except CheckError:
        raise
    except Exception as exc:  # a lost executor, a worker without pandas, …
        raise CheckError(f"Spark could not compute the drift statistics of datasets "
                         f"'{spec.reference}' and '{spec.current}': {type(exc).__name__}: "
                         f"{first_line(exc)}") from None


def _drift_statistics(context: Any, spec: Any) -> dict[str, Any]:
    from mlcheck.checks.drift import _is_numeric, tested_columns

    columns = tested_columns(spec, context)
    profile = context.subject.profile
    current = _side_frame(context, spec.current)
    reference = None if profile is not None else _side_frame(context, spec.reference)
    found: dict[str, Any] = {}
    numeric, categorical = [], []
    for column in sorted(columns):
        if column not in current.columns:
            found[column] = CheckError(f"column '{column}' not found in dataset "
                                       f"'{spec.current}'")
        elif _is_numeric(context, spec, column):
            if not is_numeric_column(current, column) or (
                    reference is not None and not is_numeric_column(reference, column)):
                found[column] = CheckError(f"column '{column}' is numeric in the reference "
                                           "but not in the current data")
            else:
                numeric.append(column)
        else:
            categorical.append(column)
    if categorical:
        found.update(_categorical(context, spec, reference, current, categorical))
    if numeric:
        found.update(_numeric(context, spec, reference, current, numeric))
    return found


def category_counts(frame: Any, columns: list[str]) -> dict[str, tuple[int, dict[str, int]]]:
    """Per column: missing values and counts per category text (as drift.category_text
    writes them: booleans as 1/0), grouped on the executors in one pass."""
    functions = pyspark().functions
    if not columns:
        return {}
    cells = functions.explode(functions.array(*[functions.struct(
        functions.lit(i).alias("c"), _quoted(c).cast("string").alias("v"))
        for i, c in enumerate(columns)])).alias("cell")
    rows = (frame.select(cells).select("cell.c", "cell.v").groupBy("c", "v")
            .agg(functions.count(functions.lit(1)).alias("n")).collect())
    out: dict[str, tuple[int, dict[str, int]]] = {c: (0, {}) for c in columns}
    for row in rows:
        column = columns[row["c"]]
        missing, counts = out[column]
        if row["v"] is None:
            out[column] = (missing + int(row["n"]), counts)
            continue
        key = row["v"]
        if _type_name(frame, column) == "BooleanType":
            key = "1" if key == "true" else "0"
        counts[key] = counts.get(key, 0) + int(row["n"])
    return out


def _categorical(context: Any, spec: Any, reference: Any, current: Any,
                 columns: list[str]) -> dict[str, Any]:
    from mlcheck.checks.drift import Sample, statistics

    def samples(frame: Any) -> dict[str, Sample]:
        return {c: Sample(False, missing + sum(counts.values()), missing, counts=counts)
                for c, (missing, counts) in category_counts(frame, columns).items()}

    profile = context.subject.profile
    cur = samples(current)
    ref = {c: Sample.from_profile(profile.columns[c]) for c in columns} \
        if reference is None else samples(reference)
    out: dict[str, Any] = {}
    for column in columns:
        try:
            out[column] = statistics(ref[column], cur[column], spec.bins, column)
        except CheckError as exc:
            out[column] = exc
    return out


def _numeric(context: Any, spec: Any, reference: Any, current: Any,
             columns: list[str]) -> dict[str, Any]:
    from mlcheck.checks.drift import binned_statistics, ks_p_value

    profile = context.subject.profile
    cur = _summaries(current, columns)
    ref = None if reference is None else _summaries(reference, columns)
    out: dict[str, Any] = {}
    edges, grids, ready = {}, {}, []
    for column in columns:
        c = cur[column]
        if profile is not None:
            stored = profile.columns[column]
            r = {"rows": stored["rows"], "missing": stored["missing"],
                 "values": stored["values"], "std": stored["std"],
                 "sketch": np.asarray(stored["quantiles"], dtype=float), "min": None,
                 "max": None}
        else:
            r = ref[column]
        base = {"missing_share": abs(c["missing"] / max(c["rows"], 1)
                                     - r["missing"] / max(r["rows"], 1)),
                "reference_rows": r["rows"], "current_rows": c["rows"],
                "reference_values": r["values"], "current_values": c["values"]}
        if r["values"] == 0 or c["values"] == 0:
            out[column] = {**base, "empty": f"column '{column}' has no values on one side"}
            continue
        out[column] = (base, r, c)
        ready.append(column)
    if profile is not None:
        edges = {c: np.asarray(profile.columns[c]["edges"], dtype=float) for c in ready}
    elif ready:
        edges = quantile_edges(reference, {c: ref[c]["values"] for c in ready}, spec.bins, ref)
    for column in ready:
        _, r, c = out[column]
        grids[column] = np.unique(np.concatenate([_grid([r, c]), edges[column]]))
    cur_atoms = _atoms(current, ready, grids) if ready else {}
    ref_atoms = _atoms(reference, ready, grids) if ready and reference is not None else {}
    for column in ready:
        base, r, c = out[column]
        grid = grids[column]
        cur_side = Side(grid, cur_atoms[column])
        ref_side = Side(grid, sample=r["sketch"]) if profile is not None \
            else Side(grid, ref_atoms[column])
        (ks_low, ks_high), (w_low, w_high) = ks_wasserstein_bounds(grid, ref_side, cur_side)
        n_ref = r["values"]
        en = n_ref * c["values"] / (n_ref + c["values"])
        spread = r["std"] if r["std"] > 0 else 1.0
        found = {**base, "ks": ks_high,
                 "ks_p": ks_p_value(ks_high, en),
                 "wasserstein": w_high / spread}
        e = edges[column]
        c_counts = np.diff(np.r_[0, cur_side.count_at_or_below(grid, e), c["values"]])
        c_share = c_counts / c["values"]
        if profile is not None:
            r_share = np.asarray(profile.columns[column]["shares"], dtype=float)
        else:
            r_share = np.diff(np.r_[0, ref_side.count_at_or_below(grid, e), n_ref]) / n_ref
        found.update(binned_statistics(e, r_share, c_share, n_ref, c["values"]))
        found["sketch"] = {
            "method": "both distribution functions counted exactly at a grid: the values of "
                      f"a seeded sample of about {SAMPLE_POINTS:,} rows of each side, the "
                      "minima, maxima and bin edges",
            "grid_points": len(grid), "ks_bounds": [ks_low, ks_high],
            "wasserstein_bounds": [w_low / spread, w_high / spread],
            "judged_on": "the upper bound"}
        out[column] = found
    return out


# ------------------------------------------------------------------ scoring

def target_summary(frame: Any, target: str, most: int = 1000) -> tuple[int, list, str]:
    """A target column's missing values (null, or NaN as pandas counts it), up to `most`
    distinct labels, and its Spark type: what the subject's target checks read."""
    functions = pyspark().functions
    column = _quoted(target)
    kind = _type_name(frame, target)
    missing = column.isNull() | (functions.isnan(column) if kind in ("FloatType", "DoubleType")
                                 else functions.lit(False))
    count = frame.agg(functions.sum(missing.cast("long")).alias("m")).first()["m"] or 0
    labels = [row[0] for row in frame.where(~missing).select(column).distinct().limit(most)
              .collect()]
    return int(count), labels, kind


SCORE_STEP = 1e-3  # the score grid's step, in logit units (see _scoring.on_grid)


class Scored:
    """A Spark dataset scored on the executors and aggregated: its distinct combinations
    of the columns checks read (target, slice and sensitive columns, black-box columns)
    and each model's predicted label and score, with how many rows each stands for. It is
    all performance and fairness read: cell counts are exact, so confusion-based metrics,
    group rates and their intervals are the local engine's; scores are counted on a grid
    (SCORE_STEP), whose effect on each score metric is bounded (grid_error)."""

    def __init__(self, frame: Any, counts: np.ndarray, outputs: dict[tuple[str, str], Any],
                 failed: dict[tuple[str, str], str], truth: np.ndarray | None,
                 exact: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        self.frame, self.counts, self.outputs = frame, counts, outputs
        self.failed = failed  # (role, kind) -> why that output could not be computed
        self.truth = truth
        self.exact = exact  # per role (or black-box score column): exact min, max per row

    def exact_range(self, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The smallest and largest exact score behind each aggregated row's grid score,
        for a role's model or a black-box score column (None: not on the grid)."""
        return self.exact.get(key)

    def output(self, role: str, kind: str) -> np.ndarray:
        """A model's `labels` or `scores` per aggregated row."""
        if (role, kind) not in self.outputs:
            raise CheckError(self.failed.get((role, kind)) or
                             f"the {role} model's {kind} were not computed on Spark")
        return self.outputs[(role, kind)]

    @functools.cached_property
    def description(self) -> dict[str, Any]:
        """The evidence's `spark` entry (computed once: every check shows it)."""
        found = {"rows": int(self.counts.sum()), "aggregated_rows": len(self.counts),
                 "computed": "model scored on the executors (mapInPandas); the driver "
                             "received counts per distinct combination of the columns "
                             "checks read, predicted labels and scores"}
        for (role, kind), values in self.outputs.items():
            if kind == "scores" and self.truth is not None and values.ndim == 1:
                found[f"{role}_score_grid"] = {
                    "step_logit": SCORE_STEP,
                    "max_probability_shift": SCORE_STEP / 8,
                    "roc_auc_error_bound": auc_tie_bound(self.truth, values, self.counts,
                                                         *self.exact[role])}
        return found


def _grid_points(truth: np.ndarray, scores: np.ndarray, counts: np.ndarray,
                 low: np.ndarray, high: np.ndarray) -> Any:
    """Per grid point, high first: positives, negatives, and whether the exact scores it
    stands for differ (a grid point of one exact score ties nothing that was not tied)."""
    import pandas as pd

    frame = pd.DataFrame({"s": scores, "p": np.where(truth, counts, 0),
                          "n": np.where(truth, 0, counts), "low": low, "high": high})
    points = frame.groupby("s").agg(p=("p", "sum"), n=("n", "sum"), low=("low", "min"),
                                    high=("high", "max")).iloc[::-1]
    return (points["p"].to_numpy(float), points["n"].to_numpy(float),
            (points["high"] > points["low"]).to_numpy())


def auc_tie_bound(truth: np.ndarray, scores: np.ndarray, counts: np.ndarray,
                  low: np.ndarray, high: np.ndarray) -> float:
    """How far ROC AUC on grid scores can be from ROC AUC on the exact scores: at most
    half the share of (positive, negative) pairs that share a grid point standing for
    more than one exact score (those pairs count 1/2; their exact order may be either)."""
    p, n, merged = _grid_points(truth, scores, counts, low, high)
    if not p.sum() or not n.sum():
        return 0.0
    return float(0.5 * np.dot(p[merged], n[merged]) / (p.sum() * n.sum()))


def ap_tie_bound(truth: np.ndarray, scores: np.ndarray, counts: np.ndarray,
                 low: np.ndarray, high: np.ndarray) -> float:
    """How far average precision on grid scores can be from average precision on the
    exact scores: within a grid point standing for several exact scores, holding p
    positives and n negatives after TP and FP rows scored higher, each positive's
    precision lies between (TP+1)/(TP+FP+n+1) and (TP+p)/(TP+FP+p), whatever their exact
    order; the grid gives them one value there."""
    p, n, merged = _grid_points(truth, scores, counts, low, high)
    if not p.sum():
        return 0.0
    tp, fp = np.cumsum(p) - p, np.cumsum(n) - n  # rows scored above each grid point
    with np.errstate(divide="ignore", invalid="ignore"):
        lowest = (tp + 1) / (tp + fp + n + 1)
        highest = np.where(p > 0, (tp + p) / (tp + fp + p), 0)
    return float(np.sum(np.where(merged & (p > 0), p * (highest - lowest), 0)) / p.sum())


def grid_error(metric: str, truth: np.ndarray, scores: np.ndarray, counts: np.ndarray,
               low: np.ndarray, high: np.ndarray) -> float:
    """The most a metric can change because the scores were counted on the grid (0 for
    metrics of labels, which were computed from exact scores, and where no grid point
    stands for more than one exact score)."""
    if not np.any(high > low):
        return 0.0
    if metric == "roc_auc":
        return auc_tie_bound(truth, scores, counts, low, high)
    if metric == "average_precision":
        return ap_tie_bound(truth, scores, counts, low, high)
    if metric == "brier_score":  # |(q - y)^2 - (p - y)^2| <= 2 |q - p|
        return 2 * SCORE_STEP / 8
    if metric == "log_loss":  # |log q - log p| <= (1 - p) |logit q - logit p|
        return SCORE_STEP / 2
    return 0.0


def _roles_and_needs(context: Any, dataset: str) -> tuple[dict[str, set[str]], set[str]]:
    """Which models a Spark dataset is scored with and what of each (`labels`, `scores`),
    and the data columns the checks group by: read from the policy's sections."""
    from mlcheck.metrics import METRICS, REGRESSION

    policy = context.policy
    needs: dict[str, set[str]] = {}
    columns: set[str] = set()
    performance, fairness = policy.performance, policy.fairness
    if performance is not None and performance.dataset == dataset:
        for rule in performance.rules:
            columns.update(rule.by)
            kind = METRICS[rule.metric].needs
            needs.setdefault("candidate", set()).add(kind)
            if rule.baseline is not None:
                needs.setdefault("baseline", set()).add(kind)
    if fairness is not None and fairness.dataset == dataset:
        for rule in fairness.rules:
            for feature in rule.sensitive or fairness.sensitive:
                columns.update([feature] if isinstance(feature, str) else feature)
            needs.setdefault("candidate", set()).add("labels")  # group rates, the table
            if rule.metric in METRICS:
                needs["candidate"].add(METRICS[rule.metric].needs)
    if context.task == REGRESSION:
        needs = {role: {"scores"} for role in needs}
    return needs, columns


def score_aggregate(context: Any, dataset: str) -> Scored:
    """Score a Spark dataset with the policy's models on the executors and bring back the
    counts of its distinct combinations (Scored). What one model cannot do there (raise,
    return the wrong shape or NaN) is the error of the checks that read that model; a
    failed Spark job is every check's error."""
    try:
        return _score_aggregate(context, dataset)
    except CheckError:
        raise
    except Exception as exc:  # a lost executor, a worker without the model's library, …
        raise CheckError(f"Spark could not score dataset '{dataset}': "
                         f"{type(exc).__name__}: {first_line(exc)}") from None


def _plan(context: Any, dataset: str, frame: Any, role: str, kinds: set[str],
          failed: dict[tuple[str, str], str]) -> dict[str, Any] | None:
    """What the executors compute for one model: scores (`proba`), labels from `predict`
    or from a threshold on the exact score; None when there is nothing to compute. What
    cannot be computed goes to `failed` with the message its checks report."""
    from mlcheck.metrics import BINARY, MULTICLASS

    model = context.model(role)
    source, task = model.source, context.task
    threshold = source.threshold if task == BINARY else None

    def fail(message: str, which: set[str] = frozenset({"labels", "scores"})) -> None:
        failed.update({(role, kind): message for kind in which})

    if model.estimator is None:  # a black box: its columns are data; a threshold is ours
        column = source.scores
        if threshold is None or "labels" not in kinds or not isinstance(column, str) \
                or column not in frame.columns:
            return None
        if not is_numeric_column(frame, column):
            fail(f"score columns ['{column}'] are not numeric")
            return None
        return {"estimator": None, "scores": column, "threshold": threshold}
    plan: dict[str, Any] = {"estimator": model.estimator, "threshold": threshold,
                            "inputs": context.feature_columns(list(frame.columns), model)}
    missing = [c for c in plan["inputs"] if c not in frame.columns]
    if missing:
        fail(f"the {role} model's inputs {missing[:5]} are not columns of dataset "
             f"'{dataset}'")
        return None
    if "scores" in kinds and task == MULTICLASS:
        fail("multiclass score metrics (one score per class) do not run on Spark yet; label "
             "metrics do", {"scores"})
        kinds = kinds - {"scores"}
    if "scores" in kinds or ("labels" in kinds and threshold is not None):
        if not hasattr(model.estimator, "predict_proba"):
            fail(f"{role} model ({type(model.estimator).__name__}) has no `predict_proba` "
                 "method", {"scores"} if threshold is None else {"labels", "scores"})
            kinds = kinds - {"scores"} if threshold is None else set()
        else:
            try:
                positive = context.positive_index(list(model.estimator.classes_), role)
            except CheckError as exc:
                fail(exc.message)
                return None
            plan["proba"] = (positive, len(model.estimator.classes_), "scores" in kinds)
    if "labels" in kinds and threshold is None:
        plan["predict"] = _label_type(model.estimator)
    if "proba" not in plan and "predict" not in plan:
        return None
    for kind in kinds:
        context.model_calls[(role, dataset, "predict_proba" if kind == "scores" or
                             threshold is not None else "predict")] += 1
    return plan


def _score_aggregate(context: Any, dataset: str) -> Scored:
    from mlcheck.metrics import BINARY, REGRESSION

    types = pyspark().types
    frame = context.spark_frame(dataset)
    policy, task = context.policy, context.task
    if task == REGRESSION:
        raise CheckError("regression metrics do not run on Spark yet: their truth and "
                         "predictions are continuous, so there is nothing to count "
                         "(docs/spark.md)")
    needs, grouping = _roles_and_needs(context, dataset)
    target = policy.data.target
    data_columns = [c for c in dict.fromkeys([target, *sorted(grouping)]) if c in frame.columns]
    score_columns: list[str] = []  # numeric black-box scores: data columns, on the grid
    for role in needs:
        source = context.model(role).source
        for column in (source.predictions, source.scores):
            if isinstance(column, str) and column in frame.columns:
                grid = column == source.scores and is_numeric_column(frame, column)
                (score_columns if grid else data_columns).append(column)
    data_columns = list(dict.fromkeys(data_columns))
    score_columns = [c for c in dict.fromkeys(score_columns) if c not in data_columns]
    failed: dict[tuple[str, str], str] = {}
    plans = {role: plan for role, kinds in needs.items()
             if (plan := _plan(context, dataset, frame, role, kinds, failed)) is not None}
    # Data columns travel under positional names (__d0, …: mapInPandas cannot take a name
    # with a backtick, and no data column can collide with the outputs below); nullable,
    # for the rows that carry a model's error.
    kept = data_columns + score_columns
    fields = [types.StructField(f"__d{i}", frame.schema[c].dataType)
              for i, c in enumerate(data_columns)]
    fields += [types.StructField(f"__d{len(data_columns) + i}", types.DoubleType())
               for i in range(len(score_columns))]
    gridded = [f"__d{len(data_columns) + i}" for i in range(len(score_columns))]
    for role, plan in plans.items():
        if "predict" in plan or plan["threshold"] is not None:
            label_type = types.BooleanType() if plan["threshold"] is not None else \
                getattr(types, plan["predict"])()
            fields.append(types.StructField(f"__label_{role}", label_type))
        if "proba" in plan and plan["proba"][2]:
            fields.append(types.StructField(f"__score_{role}", types.DoubleType()))
            gridded.append(f"__score_{role}")
    fields.append(types.StructField("__error", types.StringType()))
    keys = [f.name for f in fields]
    fields.append(types.StructField("__n", types.LongType()))
    for column in gridded:  # the exact scores each grid point stands for: their range
        fields += [types.StructField(f"__lo{column}", types.DoubleType()),
                   types.StructField(f"__hi{column}", types.DoubleType())]
    inputs = sorted({c for plan in plans.values() for c in plan.get("inputs", ())}
                    | {plan["scores"] for plan in plans.values() if "scores" in plan}
                    | set(data_columns) | set(score_columns))
    scoring = _scoring(plans, inputs, data_columns, score_columns, keys, gridded, dataset)
    functions = pyspark().functions
    ranges = [f(functions.col(f"__{side}{c}")).alias(f"__{side}{c}") for c in gridded
              for f, side in ((functions.min, "lo"), (functions.max, "hi"))]
    aggregated = (frame.select(*[_quoted(c).alias(f"__c{i}") for i, c in enumerate(inputs)])
                  .mapInPandas(scoring, types.StructType(fields))
                  .groupBy(*keys).agg(functions.sum("__n").alias("__n"), *ranges)
                  .orderBy(*keys))  # one order whatever the partitioning: the same draws
    from mlcheck.inputs import SPARK_CELLS

    cap = SPARK_CELLS.value()
    table = aggregated.limit(cap + 1).toArrow()  # never more than the cap to the driver
    if table.num_rows > cap:
        raise CheckError(SPARK_CELLS.exceeded(
            f"scoring dataset '{dataset}' (on Spark)", f"gives more than {cap:,} distinct "
            f"combinations of {', '.join(kept)} and the models' outputs: a slice or "
            "sensitive column with about one value per row?").message)
    table = table.to_pandas()
    for error in table["__error"].dropna().unique():  # "role<TAB>kind<TAB>message"
        role, kind, message = str(error).split("\t", 2)
        failed.setdefault((role, kind), message)
        if kind == "scores" and plans[role]["threshold"] is not None:  # labels from scores
            failed.setdefault((role, "labels"), message)
    table = table[table["__error"].isna()].reset_index(drop=True)
    counts = table["__n"].to_numpy(dtype=np.int64)
    expected = context.subject.datasets[dataset].rows
    if int(counts.sum()) != expected:
        raise CheckError(f"Spark scored {int(counts.sum())} rows of dataset '{dataset}', "
                         f"which has {expected}")
    outputs: dict[tuple[str, str], Any] = {}
    for role, plan in plans.items():
        label, score = table.get(f"__label_{role}"), table.get(f"__score_{role}")
        if (role, "labels") not in failed and label is not None:
            if plan["threshold"] is not None and label.isna().any():  # a NaN score
                bad = int(counts[label.isna().to_numpy()].sum())
                failed[(role, "labels")] = (f"{role} model produced {bad} NaN or infinite "
                                            f"scores on dataset '{dataset}' ({expected} rows)")
            else:
                outputs[(role, "labels")] = label.to_numpy(dtype=bool) \
                    if plan["threshold"] is not None else label.to_numpy()
        if (role, "scores") not in failed and score is not None:
            outputs[(role, "scores")] = score.to_numpy(dtype=float)
    exact = {  # by black-box score column, or by role
        kept[int(c[3:])] if c.startswith("__d") else c.removeprefix("__score_"):
        (table[f"__lo{c}"].to_numpy(dtype=float), table[f"__hi{c}"].to_numpy(dtype=float))
        for c in gridded}
    data = table[[f"__d{i}" for i in range(len(kept))]].set_axis(kept, axis=1)
    truth = None
    if task == BINARY and target in data and context.subject.positive_label is not None:
        truth = (data[target] == context.subject.positive_label).to_numpy()
    return Scored(data, counts, outputs, failed, truth, exact)


def _label_type(estimator: Any) -> str:
    """The Spark type of a classifier's predicted labels, from its `classes_` (their
    values, when the array holds Python objects)."""
    classes = np.asarray(getattr(estimator, "classes_", np.array([], dtype=object)))
    kind = classes.dtype.kind
    if kind == "O" and len(classes):
        values = classes.tolist()
        if all(isinstance(v, (bool, np.bool_)) for v in values):
            kind = "b"
        elif all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            kind = "i"
        elif all(isinstance(v, (int, float, np.number)) for v in values):
            kind = "f"
    return {"b": "BooleanType", "i": "LongType", "u": "LongType",
            "f": "DoubleType"}.get(kind, "StringType")


def _scoring(plans: dict[str, dict[str, Any]], inputs: list[str], data_columns: list[str],
             score_columns: list[str], keys: list[str], gridded: list[str],
             dataset: str) -> Any:
    """The function mapInPandas runs on each executor: score each batch with the models
    (shipped in the closure) and count its distinct rows, with the range of the exact
    scores behind each grid point. What a model's method cannot do on a batch becomes
    one row holding the role, what it failed to compute and the message, and those
    outputs are left empty. Self-contained (numpy and pandas only), so the executors need
    the models' libraries, not mlcheck."""
    step = SCORE_STEP

    def on_grid(p: Any) -> Any:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            z = np.round((np.log(p) - np.log1p(-p)) / step) * step
            grid = 1 / (1 + np.exp(-z))
        return np.where((p > 0) & (p < 1), grid, p)

    def thresholded(p: Any, threshold: float) -> Any:  # a NaN score has no label
        return np.where(np.isfinite(p), p >= threshold, None)

    def call(method: str, batch: Any, plan: dict[str, Any]) -> Any:
        out = np.asarray(getattr(plan["estimator"], method)(batch[plan["inputs"]]))
        if out.ndim == 0 or out.shape[0] != len(batch):
            raise ValueError(f"{method} returned {out.shape[:1] or 0} rows for {len(batch)}")
        return out

    def outputs(role: str, plan: dict[str, Any], batch: Any, out: dict, exact: dict,
                errors: list) -> None:
        if plan["estimator"] is None:  # a black box's exact scores, thresholded
            out[f"__label_{role}"] = thresholded(batch[plan["scores"]].to_numpy(dtype=float),
                                                 plan["threshold"])
            return
        methods = [m for m, key in (("predict_proba", "proba"), ("predict", "predict"))
                   if key in plan]
        for method in methods:
            try:
                found = call(method, batch, plan)
                if method == "predict":
                    out[f"__label_{role}"] = found.astype(str) \
                        if plan["predict"] == "StringType" else found
                    continue
                positive, classes, keep = plan["proba"]
                if found.ndim != 2 or found.shape[1] != classes:
                    raise ValueError(f"predict_proba returned shape {found.shape}; expected "
                                     f"({len(batch)}, {classes}), one column per class")
                outside = int(np.count_nonzero((found < 0) | (found > 1)))
                if outside:
                    raise ValueError(f"predict_proba returned {outside} values outside "
                                     "[0, 1]")
                p = found[:, positive].astype(float)
                if plan["threshold"] is not None:
                    out[f"__label_{role}"] = thresholded(p, plan["threshold"])
                if keep:
                    out[f"__score_{role}"], exact[f"__score_{role}"] = on_grid(p), p
            except Exception as exc:  # the checks that read these outputs report it
                kind = "scores" if method == "predict_proba" else "labels"
                errors.append(f"{role}\t{kind}\t{role} model raised {type(exc).__name__} "
                              f"in {method} on dataset '{dataset}' (on Spark): {exc}")
                cleared = [f"__score_{role}"] if method == "predict_proba" else []
                if method == "predict" or plan["threshold"] is not None:
                    cleared.append(f"__label_{role}")  # labels from these scores too
                for name in cleared:
                    out[name] = None
                    if name in gridded:
                        exact[name] = np.full(len(batch), np.nan)

    def score(batches: Any) -> Any:
        import pandas as pd

        for batch in batches:
            batch = batch.set_axis(inputs, axis=1)  # the columns' own names
            out = {f"__d{i}": batch[c] for i, c in enumerate(data_columns)}
            exact = {}
            for i, c in enumerate(score_columns):
                values = batch[c].to_numpy(dtype=float)
                name = f"__d{len(data_columns) + i}"
                out[name], exact[name] = on_grid(values), values
            errors: list[str] = []
            for role, plan in plans.items():
                outputs(role, plan, batch, out, exact, errors)
            frame = pd.DataFrame(out, index=batch.index)
            for name in keys[:-1]:
                if name not in frame:  # a model that failed before giving any output
                    frame[name] = None
            frame = frame[keys[:-1]].assign(__n=1, **{
                f"__x{c}": exact.get(c, np.full(len(batch), np.nan)) for c in gridded})
            counted = frame.groupby(keys[:-1], dropna=False, sort=False).agg(
                __n=("__n", "sum"), **{f"__{side}{c}": (f"__x{c}", how) for c in gridded
                                       for side, how in (("lo", "min"), ("hi", "max"))})
            counted = counted.reset_index()
            counted.insert(len(keys) - 1, "__error", None)
            yield counted
            for error in errors:
                yield pd.DataFrame({**{n: [None] for n in keys[:-1]}, "__error": [error],
                                    "__n": [0], **{f"__{side}{c}": [None] for c in gridded
                                                   for side in ("lo", "hi")}})

    return score


# ------------------------------------------------------------------ profile

def make_profile(frame: Any, bins: int = 10) -> dict[str, Any]:
    """`mlcheck profile` of a Spark DataFrame, in the same format as
    mlcheck.checks.drift.make_profile. Counts, missing values, the spread and the bins
    (edges and shares) are exact; each of the 1,001 quantiles is the first point of the
    grid where the exactly counted distribution function reaches its probability (within
    one grid interval, about 1/SAMPLE_POINTS of the rows), a sketch like the one the drift
    checks read from any profile."""
    from mlcheck.checks.drift import PROFILE_VERSION

    numeric = [c for c in frame.columns if is_numeric_column(frame, c)]
    summaries = _summaries(frame, numeric) if numeric else {}
    rows = summaries[numeric[0]]["rows"] if numeric else frame.count()
    filled = [c for c in numeric if summaries[c]["values"]]
    edges = quantile_edges(frame, {c: summaries[c]["values"] for c in filled}, bins,
                           summaries) if filled else {}
    grids = {c: np.unique(np.concatenate([_grid([summaries[c]]), edges[c]])) for c in filled}
    atoms = _atoms(frame, filled, grids) if filled else {}
    categories = category_counts(frame, [c for c in frame.columns if c not in numeric])
    columns: dict[str, Any] = {}
    for name in frame.columns:
        if name in filled:
            s = summaries[name]
            side = Side(grids[name], atoms[name])
            shares = np.diff(np.r_[0, side.count_at_or_below(grids[name], edges[name]),
                                   s["values"]]) / s["values"]
            # each quantile: the first grid point the exact distribution function reaches
            at = np.searchsorted(side.at, np.linspace(0, 1, PROFILE_POINTS) - 1e-12)
            quantiles = grids[name][np.minimum(at, len(grids[name]) - 1)]
            columns[str(name)] = {"rows": rows, "missing": s["missing"], "kind": "numeric",
                                  "values": s["values"], "std": s["std"],
                                  "quantiles": quantiles.tolist(),
                                  "edges": edges[name].tolist(), "shares": shares.tolist()}
        else:  # text, booleans, dates; or a numeric column without values, as locally
            missing, counts = categories.get(name, (rows, {}))
            columns[str(name)] = {"rows": rows, "missing": missing, "kind": "categorical",
                                  "counts": counts}
    return {"mlcheck_profile": PROFILE_VERSION, "bins": bins, "rows": rows,
            "columns": columns}


# ------------------------------------------------------------------ schema

FLOAT_TYPES = ("FloatType", "DoubleType")
ORDERED_TYPES = (*NUMERIC_TYPES, "BooleanType", "DecimalType")  # what `ge` & co. apply to
# The policy dtypes each Spark type satisfies, as pandas reads that type from Parquet.
# Spark's types hold missing values, so pandas' nullable dtypes (Int64, boolean) match as
# well; Spark has no categorical type (strings are `category`) and its timestamps are
# `datetime64[ns]` whatever their zone. Any type not listed is read as `object`.
SCHEMA_DTYPES = {
    "ByteType": (), "ShortType": (), "IntegerType": ("int32",),
    "LongType": ("int64", "Int64"), "FloatType": ("float32",), "DoubleType": ("float64",),
    "StringType": ("str", "string", "category"), "BooleanType": ("bool", "boolean"),
    "TimestampType": ("datetime64[ns]",), "TimestampNTZType": ("datetime64[ns]",),
}
ARROW_NAMES = {"ByteType": "int8", "ShortType": "int16", "IntegerType": "int32",
               "LongType": "int64", "FloatType": "float32", "DoubleType": "float64",
               "StringType": "string", "BooleanType": "bool"}


def pandas_dtype(kind: str) -> str:
    """The dtype pandas gives a column of this Spark type read from Parquet (the `found`
    of a failed dtype check), named by the installed pandas: `str`, `datetime64[us]`."""
    import pyarrow

    if kind in TIME_TYPES:
        arrow = pyarrow.timestamp("us", tz="UTC" if kind == "TimestampType" else None)
    elif kind in ARROW_NAMES:
        arrow = pyarrow.type_for_alias(ARROW_NAMES[kind])
    else:
        return "object"
    return str(pyarrow.array([], arrow).to_pandas().dtype)


def _value(frame: Any, name: str) -> Any:
    """A column as the value checks read it: NaN is missing, as in pandas."""
    functions = pyspark().functions
    x = _quoted(name)
    return functions.when(~functions.isnan(x), x) if _type_name(frame, name) in FLOAT_TYPES \
        else x


def _comparable(kind: str, values: tuple) -> list:
    """The policy's `isin`/`notin` values a column of this type can equal, as pandas
    compares them: numbers and booleans with each other (True is 1), text with text;
    a timestamp or date equals none of them."""
    numbers = [v for v in values if not isinstance(v, str)]
    if kind == "StringType":
        return [v for v in values if isinstance(v, str)]
    if kind in (*FLOAT_TYPES, "DecimalType"):
        return [float(v) for v in numbers]
    if kind in ORDERED_TYPES:
        return [int(v) for v in numbers if float(v).is_integer()]
    return []


def _violation(frame: Any, name: str, key: str, value: Any) -> tuple[Any, str | None]:
    """The condition a row fails one value check on (null where the value is missing:
    only `nullable` judges those, as pandera skips them), or, when the check cannot apply
    to the column's type (where pandas raises), the error to report instead."""
    functions = pyspark().functions
    kind = _type_name(frame, name)
    x = _value(frame, name)
    if kind == "BooleanType":
        x = x.cast("int")
    if key in ("ge", "gt", "le", "lt"):
        if kind not in ORDERED_TYPES:
            return None, f"TypeError: Spark {kind} values cannot be compared with {value!r}"
        return ~{"ge": x >= value, "gt": x > value, "le": x <= value, "lt": x < value}[key], None
    if key in ("isin", "notin"):
        listed = _comparable(kind, value)
        hit = x.isin(listed) if listed else functions.when(x.isNotNull(), functions.lit(False))
        return (~hit if key == "isin" else hit), None
    if kind != "StringType":
        return None, f"TypeError: Spark {kind} values are not text"
    if key == "regex":  # pandera's str_matches is re.match: anchored at the start
        # (?U): \d, \w and \s match Unicode digits, letters and spaces, as in Python
        return ~x.rlike(f"(?U)^(?:{value})"), None
    length = functions.length(x)
    return (length < value if key == "min_length" else length > value), None


def schema_findings(frame: Any, policy: Any, dataset: str) -> dict[str | None, list[dict]]:
    """The schema section's findings on one Spark dataset, per declared column (None: the
    strictness check), under the names and in the order pandera reports them locally
    (dtype, not_nullable, field_uniqueness, then the value checks): `{check, failures,
    examples}` for a check that fails (examples: the first failing values found; the
    dtype found; the missing or extra columns), `{check, error}` for one that cannot
    apply to the column's type. The executors count every check in one aggregate pass
    and the duplicates in one grouped pass; the driver then fetches at most MAX_EXAMPLES
    failing values per failed check, never a row."""
    try:
        return _schema_findings(frame, policy)
    except Exception as exc:  # a lost executor, a pattern Java cannot compile, …
        raise CheckError(f"Spark could not validate dataset '{dataset}' against the schema: "
                         f"{_cause(exc)}") from None


def _cause(exc: BaseException) -> str:
    """What failed: the innermost cause a failed Spark job reports (the task's own
    exception), else the exception's first line."""
    causes = [line.strip().removeprefix("Caused by: ") for line in str(exc).splitlines()
              if line.strip().startswith("Caused by: ")]
    if not causes:
        return f"{type(exc).__name__}: {first_line(exc)}"
    # a regex's position would count the anchor mlcheck adds, not the policy's pattern
    return causes[-1].split(" near index ")[0][:300] \
        if "PatternSyntaxException" in causes[-1] else causes[-1][:300]


def _schema_findings(frame: Any, policy: Any) -> dict[str | None, list[dict]]:
    from functools import reduce

    from mlcheck.checks.schema import MAX_EXAMPLES, build_schema

    functions = pyspark().functions
    spec = policy.schema_
    pandera = build_schema(policy).columns
    out: dict[str | None, list[dict]] = {None: []}
    counted, unique, fetch = [], [], []  # (finding, column, what counts it)
    for name, column in spec.columns.items():
        found = out[name] = []
        if name not in frame.columns:
            if column.required:
                found.append({"check": "column_in_dataframe", "failures": 1,
                              "examples": [name]})
            continue
        kind = _type_name(frame, name)
        if column.dtype is not None and column.dtype not in SCHEMA_DTYPES.get(kind,
                                                                             ("object",)):
            found.append({"check": f"dtype('{pandera[name].dtype}')", "failures": 1,
                          "examples": [pandas_dtype(kind)]})
        x = _quoted(name)
        if not column.nullable:
            found.append({"check": "not_nullable", "failures": 0, "examples": []})
            counted.append((found[-1], name, x.isNull() | functions.isnan(x)
                            if kind in FLOAT_TYPES else x.isNull()))
        if column.unique:
            found.append({"check": "field_uniqueness", "failures": 0, "examples": []})
            value = _value(frame, name)
            unique.append((found[-1], name, frame.where(value.isNotNull()).groupBy(
                value.alias("v")).agg(functions.count(functions.lit(1)).alias("n"))
                .where("n > 1")))
        given = column.checks.model_dump(exclude_none=True)
        for (key, bound), check in zip(given.items(), pandera[name].checks, strict=True):
            condition, error = _violation(frame, name, key, bound)
            if error is not None:
                found.append({"check": check.error, "error": error})
                continue
            found.append({"check": check.error, "failures": 0, "examples": []})
            counted.append((found[-1], name, condition))
    if spec.strict:
        extra = [c for c in frame.columns if c not in spec.columns]
        if extra:
            out[None].append({"check": "column_in_schema", "failures": len(extra),
                              "examples": extra[:MAX_EXAMPLES]})
    if counted:  # one pass: every check of every column
        row = frame.agg(*[functions.count_if(c).alias(f"c{i}")
                          for i, (_, _, c) in enumerate(counted)]).first()
        for i, (finding, name, condition) in enumerate(counted):
            finding["failures"] = int(row[f"c{i}"])
            if finding["check"] == "not_nullable":  # pandera shows a missing value as NaN
                finding["examples"] = [None] * min(finding["failures"], MAX_EXAMPLES)
            elif finding["failures"]:
                fetch.append((finding, name, frame.where(condition), False))
    if unique:  # one pass: the rows whose value is repeated, per column
        totals = reduce(lambda a, b: a.union(b), [groups.agg(
            functions.lit(i).alias("i"), functions.sum("n").alias("n"))
            for i, (_, _, groups) in enumerate(unique)]).collect()
        for total in totals:
            finding, name, groups = unique[total["i"]]
            finding["failures"] = int(total["n"] or 0)
            if finding["failures"]:  # the smallest repeated values, each as often as seen
                fetch.append((finding, name, groups.orderBy("v"), True))
    if fetch:  # one pass: at most MAX_EXAMPLES failing values per failed check
        names = list(dict.fromkeys(name for _, name, _, _ in fetch))
        branches = [rows.select(
            functions.lit(k).alias("k"),
            (functions.col("n") if grouped else functions.lit(1)).cast("long").alias("n"),
            *[((functions.col("v") if grouped else _quoted(c)) if c == name else
               functions.lit(None).cast(frame.schema[c].dataType)).alias(f"v{j}")
              for j, c in enumerate(names)]).limit(MAX_EXAMPLES)
            for k, (_, name, rows, grouped) in enumerate(fetch)]
        for row in reduce(lambda a, b: a.union(b), branches).collect():
            finding, name = fetch[row["k"]][:2]
            value = row[f"v{names.index(name)}"]
            finding["examples"].extend([value] * min(row["n"], MAX_EXAMPLES))
    return {name: [{**f, "examples": f["examples"][:MAX_EXAMPLES]} if "examples" in f else f
                   for f in found if "error" in f or f["failures"]]
            for name, found in out.items()}
