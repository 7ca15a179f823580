"""A run's record: metrics.csv and the TensorBoard event files, kept as one.

metrics.csv is the record; the TensorBoard events show the same numbers and are
rebuilt from it whenever a resume rewinds the record to its checkpoint's step (rows
written after the checkpoint by the stopped process are written again by the resumed
one, and append-only event files would otherwise draw both copies). The training loop
only calls :meth:`MetricsLog.write`; Dopamine keeps its logger apart from its runner
for the same reason: the loop stays a loop.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
from pathlib import Path
from typing import Any

METRIC_FIELDS = ("kind", "step", "episode", "return", "length", "x_pos", "flag", "epsilon", "loss", "mean_q",
                 "steps_per_s", "max_x_pos", "flag_rate", "wall_s", "stage", "restart_steps")
"""Columns of metrics.csv. ``kind`` is 'episode' (one training episode), 'eval'
(the mean over an evaluation's episodes; max_x_pos and flag_rate only there) or 'check'
(as 'eval', for ``runner.stop_when_solved``'s check on ``runner.solved_episodes`` episodes).
``stage`` ('W-S') is the stage an episode played; an eval row has it only when the
run trains on several stages, one row per stage beside the pooled row (which has none).
``wall_s`` is the seconds of training so far, summed over the run's resumes (from
the start of each process's Trainer, so start-up, evaluations and checkpoints count):
how long the run took to get here, read from the record rather than estimated.
``restart_steps`` (runs with ``env.restart_from_best`` only) is how many replayed steps a
training episode began after: 0 for one from the stage start (its return and length count
from where it began; x_pos and flag are where it ended, as always)."""

def began_at_stage_start(row: dict[str, str]) -> bool:
    """Whether a metrics.csv episode row began at the stage start: not one that
    ``env.restart_from_best`` started along an earlier episode (runs without it, and
    records written before the column, have none). A first flag counts only from these."""
    return row.get("restart_steps") in (None, "", "0")


SCALAR_FIELDS = ("return", "length", "x_pos", "flag", "epsilon", "loss", "mean_q", "steps_per_s",
                 "max_x_pos", "flag_rate")
"""The columns of a metrics row that TensorBoard shows, as ``<kind>/<column>``."""


class MalformedMetrics(ValueError):
    """metrics.csv has a row that does not parse; the message names the file."""


class MetricsLog:
    """metrics.csv and ``tensorboard/`` of one run directory."""

    def __init__(self, run_dir: Path) -> None:
        self.csv_path = Path(run_dir) / "metrics.csv"
        self.tb_path = Path(run_dir) / "tensorboard"
        self._handle: Any = None
        self._writer: Any = None
        self._tb: Any = None

    # ---------------------------------------------------------------- resume

    def truncate_after(self, step: int) -> None:
        """Keep only the rows up to ``step`` (a resume's checkpoint), in both records.

        Every row is checked before anything is rewritten, so a malformed file is
        refused (:class:`MalformedMetrics`) with both records untouched. No
        metrics.csv: nothing to do (there is no record to rebuild from).
        """
        if not self.csv_path.exists():
            return
        rows = [row for row in self._read_rows() if int(row["step"]) <= step]
        self._rewrite_csv(rows)
        self._rewrite_tensorboard(rows)

    def _read_rows(self) -> list[dict[str, str]]:
        try:
            with open(self.csv_path, newline="") as handle:
                rows = list(csv.DictReader(handle))
            for row in rows:
                int(row["step"])
                row_scalars(row)
        except (ValueError, TypeError, KeyError, csv.Error) as err:
            raise MalformedMetrics(f"{self.csv_path} is malformed ({type(err).__name__}: {err}); move it aside "
                                   f"to resume (the TensorBoard logs are then left as they are)") from None
        return rows

    def _rewrite_csv(self, rows: list[dict[str, str]]) -> None:
        tmp = self.csv_path.with_name(self.csv_path.name + ".tmp")  # a kill mid-rewrite keeps the old file whole
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, METRIC_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, self.csv_path)

    def _rewrite_tensorboard(self, rows: list[dict[str, str]]) -> None:
        """Write ``rows`` into a fresh event directory that then replaces the old one.

        A kill in between leaves metrics.csv intact, and the next resume rebuilds again.
        """
        import tensorflow as tf
        from tensorboard.plugins.scalar.metadata import create_summary_metadata

        fresh, stale = self.tb_path.with_name("tensorboard.rebuild"), self.tb_path.with_name("tensorboard.stale")
        for leftover in (fresh, stale):
            shutil.rmtree(leftover, ignore_errors=True)
        series: dict[str, tuple[list[int], list[float]]] = {}
        for row in rows:
            for tag, value in row_scalars(row):
                steps, values = series.setdefault(tag, ([], []))
                steps.append(int(row["step"]))
                values.append(value)
        scalar_kind = create_summary_metadata(display_name=None, description=None)

        @tf.function(input_signature=(tf.TensorSpec([], tf.string), tf.TensorSpec([None], tf.int64),
                                      tf.TensorSpec([None], tf.float32)))
        def write_series(tag: tf.Tensor, steps: tf.Tensor, values: tf.Tensor) -> None:
            # One graph call per tag: eager tf.summary.scalar pays a dispatch per value,
            # which makes resuming a long run's tens of thousands of values slow. The
            # signature makes it one trace for every tag and length. The low-level
            # write keeps the tag as given (scalar() would prefix the loop's name
            # scope) and marks it a scalar exactly as scalar() does.
            for i in tf.range(tf.size(steps)):
                tf.summary.write(tag, values[i], step=steps[i], metadata=scalar_kind)

        writer = tf.summary.create_file_writer(str(fresh))
        try:
            with writer.as_default():
                for tag, (steps, values) in series.items():
                    write_series(tf.constant(tag), tf.constant(steps, tf.int64), tf.constant(values, tf.float32))
        finally:
            writer.close()
        if self.tb_path.exists():
            os.replace(self.tb_path, stale)
        os.replace(fresh, self.tb_path)
        shutil.rmtree(stale, ignore_errors=True)

    # ------------------------------------------------------------- training

    def open(self) -> None:
        """Start appending (a header first if the file is new)."""
        import tensorflow as tf

        new = not self.csv_path.exists()
        self._handle = open(self.csv_path, "a", newline="", buffering=1)  # line-buffered: `tail -f` works
        self._writer = csv.DictWriter(self._handle, METRIC_FIELDS)
        if new:
            self._writer.writeheader()
        self._tb = tf.summary.create_file_writer(str(self.tb_path), max_queue=200)

    def write(self, row: dict[str, Any]) -> None:
        """One row (missing columns empty) to metrics.csv, its scalars to TensorBoard."""
        self._writer.writerow({k: row.get(k, "") for k in METRIC_FIELDS})
        write_scalars(self._tb, row)

    def flush(self) -> None:
        self._tb.flush()
        self._handle.flush()

    def close(self) -> None:
        try:
            self._handle.close()
        finally:
            self._tb.close()


def row_scalars(row: dict[str, Any]) -> list[tuple[str, float]]:
    """(TensorBoard tag, value) of a metrics row's numeric columns.

    ``row`` is what the loop writes (numbers, "" for none) or a row read back from
    metrics.csv (all strings, "nan" for a loss not computed yet); empty and NaN
    columns are left out, so TensorBoard shows no point rather than a false 0. A
    stage's own evaluation row is tagged ``eval/<stage>/<column>`` (a check's
    ``check/<stage>/<column>``); training episodes keep ``episode/<column>`` whatever their
    stage (one curve per run, as before).
    """
    prefix = row["kind"]
    if prefix != "episode" and row.get("stage"):
        prefix = f"{prefix}/{row['stage']}"
    scalars = []
    for key in SCALAR_FIELDS:
        value = row.get(key, "")
        if value == "" or value is None:
            continue
        number = float(value)
        if not math.isnan(number):
            scalars.append((f"{prefix}/{key}", number))
    return scalars


def write_scalars(writer: Any, row: dict[str, Any]) -> None:
    """A metrics row's :func:`row_scalars` written at the row's step."""
    import tensorflow as tf

    with writer.as_default(step=int(row["step"])):
        for tag, value in row_scalars(row):
            tf.summary.scalar(tag, value)
