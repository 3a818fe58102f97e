"""The one recorder every benchmark writes through: CSV files always, PostgreSQL too when given a URL.

    with MetricsRecorder("load") as recorder:        # samples CPU %, RSS (and GPU when present) meanwhile
        recorder.record("xf", {"load_s": 1.2}, model="tiny")

Three tables, in CSV files under the results directory and (with a URL) in PostgreSQL:

- ``benchmarks``: one row per run of one benchmark (id, name, commit, machine, status, error, metadata).
  The CSV gets a row when the run starts (status ``running``) and one when it ends (``ok`` or ``failed``);
  readers keep the last row per id (:func:`read_results` does).
- ``device_measurements``: samples taken during the run: CPU %, RSS MB, GPU utilisation % and memory MB.
- ``model_measurements``: one row per metric (load time, time to first token, tokens/s, compile time, ...)
  with the contender and its labels.

The results directory is ``results_dir``, else ``$XF_BENCH_RESULTS``, else ``benchmark/results/``; the
database is ``database_url``, else ``$XF_BENCH_DATABASE_URL``, else none. The PostgreSQL schema is created on
first use and versioned (table ``xf_schema``); a database that goes away mid-run is reported once on stderr
and the run carries on with CSV only, so the CSV files are always complete.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "SCHEMA_VERSION",
    "DeviceSample",
    "MetricsRecorder",
    "MetricsSchemaError",
    "read_results",
    "sample_device",
]

DEFAULT_RESULTS = Path(__file__).resolve().parent / "results"

# Each entry upgrades the schema from version i to i + 1; never edit one that shipped, append a new one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE benchmarks (
        benchmark_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        commit_id TEXT NOT NULL,
        machine TEXT NOT NULL,
        status TEXT NOT NULL,
        error TEXT,
        metadata JSONB NOT NULL,
        started_at TIMESTAMPTZ NOT NULL,
        finished_at TIMESTAMPTZ
    );
    CREATE TABLE device_measurements (
        measurement_id BIGSERIAL PRIMARY KEY,
        benchmark_id TEXT NOT NULL REFERENCES benchmarks (benchmark_id),
        time TIMESTAMPTZ NOT NULL,
        cpu_percent DOUBLE PRECISION,
        rss_mb DOUBLE PRECISION,
        gpu_util_percent DOUBLE PRECISION,
        gpu_mem_mb DOUBLE PRECISION
    );
    CREATE TABLE model_measurements (
        measurement_id BIGSERIAL PRIMARY KEY,
        benchmark_id TEXT NOT NULL REFERENCES benchmarks (benchmark_id),
        time TIMESTAMPTZ NOT NULL,
        contender TEXT NOT NULL,
        labels JSONB NOT NULL,
        metric TEXT NOT NULL,
        value DOUBLE PRECISION NOT NULL
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

COLUMNS = {
    "benchmarks": (
        "benchmark_id",
        "name",
        "commit_id",
        "machine",
        "status",
        "error",
        "metadata",
        "started_at",
        "finished_at",
    ),
    "device_measurements": (
        "benchmark_id",
        "time",
        "cpu_percent",
        "rss_mb",
        "gpu_util_percent",
        "gpu_mem_mb",
    ),
    "model_measurements": ("benchmark_id", "time", "contender", "labels", "metric", "value"),
}


class MetricsSchemaError(RuntimeError):
    """The database holds a schema this recorder does not know."""


@dataclass(frozen=True)
class DeviceSample:
    time: float
    cpu_percent: float | None
    rss_mb: float | None
    gpu_util_percent: float | None = None
    gpu_mem_mb: float | None = None


def sample_device(pid: int | None = None) -> DeviceSample:
    """Machine CPU %, the RSS of ``pid`` (default: this process) and its children, and the first GPU's
    utilisation and memory when ``nvidia-smi`` is there."""
    import psutil

    process = psutil.Process(pid)
    rss = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            rss += p.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    gpu_util = gpu_mem = None
    if shutil.which("nvidia-smi"):
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
        )
        if out.returncode == 0 and out.stdout.strip():
            util, mem = out.stdout.splitlines()[0].split(",")
            gpu_util, gpu_mem = float(util), float(mem)
    return DeviceSample(time.time(), psutil.cpu_percent(interval=None), rss / 2**20, gpu_util, gpu_mem)


def _timestamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _commit() -> str:
    if os.environ.get("XF_BENCH_COMMIT"):
        return os.environ["XF_BENCH_COMMIT"]
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True
    )
    return out.stdout.strip() if out.returncode == 0 else "unknown"


class _Database:
    """A PostgreSQL connection that creates/upgrades the schema on open."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.connection = psycopg.connect(url, autocommit=True, connect_timeout=10)
        with self.connection.transaction():
            self.connection.execute("SELECT pg_advisory_xact_lock(7210071)")  # one migrator at a time
            self.connection.execute("CREATE TABLE IF NOT EXISTS xf_schema (version INTEGER NOT NULL)")
            row = self.connection.execute("SELECT max(version) FROM xf_schema").fetchone()
            current = row[0] or 0
            if current > SCHEMA_VERSION:
                raise MetricsSchemaError(
                    f"the database at {url} has metrics schema v{current}, newer than this recorder's "
                    f"v{SCHEMA_VERSION} (benchmark/metrics.py): run a newer checkout or use another database"
                )
            for version in range(current, SCHEMA_VERSION):
                self.connection.execute(MIGRATIONS[version])
                self.connection.execute("INSERT INTO xf_schema (version) VALUES (%s)", (version + 1,))

    def insert(self, table: str, row: Mapping[str, Any]) -> None:
        from psycopg.types.json import Jsonb

        values = [Jsonb(v) if isinstance(v, dict) else v for v in row.values()]
        names = ", ".join(row)
        marks = ", ".join(["%s"] * len(row))
        self.connection.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", values)

    def finish(self, benchmark_id: str, status: str, error: str | None, finished_at: datetime) -> None:
        self.connection.execute(
            "UPDATE benchmarks SET status = %s, error = %s, finished_at = %s WHERE benchmark_id = %s",
            (status, error, finished_at, benchmark_id),
        )

    def close(self) -> None:
        self.connection.close()


class MetricsRecorder:
    """Records one benchmark run; use it as a context manager (an exception marks the run failed)."""

    def __init__(
        self,
        benchmark: str,
        *,
        results_dir: str | os.PathLike[str] | None = None,
        database_url: str | None = None,
        commit: str | None = None,
        sample_interval: float | None = 1.0,
        **metadata: Any,
    ) -> None:
        self.benchmark = benchmark
        self.results_dir = Path(results_dir or os.environ.get("XF_BENCH_RESULTS") or DEFAULT_RESULTS)
        self.database_url = database_url or os.environ.get("XF_BENCH_DATABASE_URL") or None
        self.commit = commit or _commit()
        self.benchmark_id = uuid.uuid4().hex
        self.sample_interval = sample_interval
        self.rows: list[dict[str, Any]] = []
        self.status = "running"
        self.database_error: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None
        self._database: _Database | None = None
        self.results_dir.mkdir(parents=True, exist_ok=True)
        if self.database_url:
            try:
                self._database = _Database(self.database_url)
            except MetricsSchemaError:
                raise
            except Exception as error:
                self._lost_database(error)
        self._write(
            "benchmarks",
            {
                "benchmark_id": self.benchmark_id,
                "name": benchmark,
                "commit_id": self.commit,
                "machine": platform.node(),
                "status": "running",
                "error": None,
                "metadata": dict(metadata),
                "started_at": _timestamp(time.time()),
                "finished_at": None,
            },
        )

    # -- writing -----------------------------------------------------------------------------------------

    def _lost_database(self, error: BaseException) -> None:
        """Report a database failure once; from then on only the CSV files are written."""
        if self.database_error is None:
            self.database_error = f"{type(error).__name__}: {error}".strip()
            print(
                f"metrics: PostgreSQL ({self.database_url}) failed: {self.database_error}; "
                f"recording to CSV only in {self.results_dir}",
                file=sys.stderr,
            )
        if self._database is not None:
            with suppress(Exception):
                self._database.close()
        self._database = None

    def _write(self, table: str, row: dict[str, Any]) -> None:
        with self._lock:
            path = self.results_dir / f"{table}.csv"
            new = not path.exists() or path.stat().st_size == 0
            with path.open("a", newline="") as f:
                writer = csv.writer(f)
                if new:
                    writer.writerow(COLUMNS[table])
                writer.writerow([_csv_cell(row[c]) for c in COLUMNS[table]])
            if self._database is not None:
                try:
                    self._database.insert(table, row)
                except Exception as error:
                    self._lost_database(error)

    def record(self, contender: str, metrics: Mapping[str, float], **labels: Any) -> None:
        """One measurement: every metric becomes a ``model_measurements`` row."""
        now = time.time()
        self.rows.append({"contender": contender, "labels": labels, "metrics": dict(metrics), "time": now})
        for metric, value in metrics.items():
            self._write(
                "model_measurements",
                {
                    "benchmark_id": self.benchmark_id,
                    "time": _timestamp(now),
                    "contender": contender,
                    "labels": dict(labels),
                    "metric": metric,
                    "value": float(value),
                },
            )

    def record_all(self, results: Mapping[str, Sequence[Mapping[str, float]]], **labels: Any) -> None:
        for contender, runs in results.items():
            for run in runs:
                self.record(contender, run, **labels)

    def record_device(self, sample: DeviceSample) -> None:
        self._write(
            "device_measurements",
            {
                "benchmark_id": self.benchmark_id,
                "time": _timestamp(sample.time),
                "cpu_percent": sample.cpu_percent,
                "rss_mb": sample.rss_mb,
                "gpu_util_percent": sample.gpu_util_percent,
                "gpu_mem_mb": sample.gpu_mem_mb,
            },
        )

    def finish(self, status: str = "ok", error: str | None = None) -> None:
        """End the run (``ok`` or ``failed``); later calls do nothing."""
        if self.status != "running":
            return
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join()
        self.status = status
        now = _timestamp(time.time())
        with self._lock:
            path = self.results_dir / "benchmarks.csv"
            with path.open("a", newline="") as f:
                row = {
                    "benchmark_id": self.benchmark_id,
                    "name": self.benchmark,
                    "commit_id": self.commit,
                    "machine": platform.node(),
                    "status": status,
                    "error": error,
                    "metadata": None,
                    "started_at": None,
                    "finished_at": now,
                }
                csv.writer(f).writerow([_csv_cell(row[c]) for c in COLUMNS["benchmarks"]])
            if self._database is not None:
                try:
                    self._database.finish(self.benchmark_id, status, error, now)
                    self._database.close()
                except Exception as error_:
                    self._lost_database(error_)
                self._database = None

    # -- device sampling -----------------------------------------------------------------------------------

    @contextmanager
    def sampling(self, interval: float = 1.0) -> Iterator[None]:
        """Sample the device every ``interval`` seconds while the block runs."""
        self._start_sampler(interval)
        try:
            yield
        finally:
            self._stop.set()
            if self._sampler is not None:
                self._sampler.join()
            self._sampler = None
            self._stop = threading.Event()

    def _start_sampler(self, interval: float) -> None:
        def loop() -> None:
            while True:
                self.record_device(sample_device())
                if self._stop.wait(interval):
                    return

        self._sampler = threading.Thread(target=loop, name="metrics-sampler", daemon=True)
        self._sampler.start()

    def __enter__(self) -> MetricsRecorder:
        if self.sample_interval:
            self._start_sampler(self.sample_interval)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: Any) -> None:
        if error is None:
            self.finish("ok")
        else:
            self.finish("failed", f"{kind.__name__}: {error}")

    # -- reading back --------------------------------------------------------------------------------------

    def summary(self, **labels: Any) -> dict[str, dict[str, float]]:
        """Medians per contender over the measurements whose labels include ``labels``."""
        grouped: dict[str, dict[str, list[float]]] = {}
        for row in self.rows:
            if all(row["labels"].get(k) == v for k, v in labels.items()):
                for metric, value in row["metrics"].items():
                    grouped.setdefault(row["contender"], {}).setdefault(metric, []).append(value)
        return {
            name: {metric: statistics.median(values) for metric, values in metrics.items()}
            for name, metrics in grouped.items()
        }


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def read_results(results_dir: str | os.PathLike[str]) -> dict[str, list[dict[str, Any]]]:
    """The three tables from a results directory: ``benchmarks`` (last row per id, i.e. its final state,
    with its start time kept), ``model_measurements`` (``value`` as float, ``labels`` as dict) and
    ``device_measurements`` (numbers as floats, missing ones as None)."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for table in COLUMNS:
        path = Path(results_dir) / f"{table}.csv"
        rows = list(csv.DictReader(path.open(newline=""))) if path.exists() else []
        tables[table] = rows
    runs: dict[str, dict[str, Any]] = {}
    for row in tables["benchmarks"]:
        first = runs.get(row["benchmark_id"], {})
        merged = {**first, **{k: v for k, v in row.items() if v != ""}}
        merged["metadata"] = first["metadata"] if first else json.loads(row["metadata"] or "{}")
        merged["error"] = row["error"] or None
        merged["finished_at"] = row["finished_at"] or None
        runs[row["benchmark_id"]] = merged
    tables["benchmarks"] = list(runs.values())
    for row in tables["model_measurements"]:
        row["value"] = float(row["value"])
        row["labels"] = json.loads(row["labels"])
    for row in tables["device_measurements"]:
        for key in ("cpu_percent", "rss_mb", "gpu_util_percent", "gpu_mem_mb"):
            row[key] = float(row[key]) if row[key] else None
    return tables
