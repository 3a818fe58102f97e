"""The metrics recorder against real files and a real PostgreSQL server (started here with initdb + pg_ctl
unless ``.ci/run`` already started one and exported ``$XF_TEST_POSTGRES_URL``)."""

import importlib.util
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


metrics = _load("metrics", ROOT / "benchmark" / "metrics.py")
postgres = _load("ci_postgres", ROOT / "ci" / "postgres.py")


@pytest.fixture(scope="module")
def server_url():
    import os

    if os.environ.get("XF_TEST_POSTGRES_URL"):
        yield os.environ["XF_TEST_POSTGRES_URL"]
        return
    server = postgres.LocalPostgres.start()
    yield server.url
    server.stop()


@pytest.fixture
def database_url(server_url):
    """A fresh database on the server for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + "/" + name


def test_csv_round_trip_without_a_database(tmp_path):
    with metrics.MetricsRecorder("demo", results_dir=tmp_path, commit="abc", sample_interval=None, k=1) as r:
        r.record_all({"xf": [{"s": 1.0}, {"s": 3.0}], "hf": [{"s": 5.0}]}, batch=8)
        r.record_device(metrics.DeviceSample(1.0, 50.0, 100.0))
    assert r.summary(batch=8) == {"xf": {"s": 2.0}, "hf": {"s": 5.0}}
    tables = metrics.read_results(tmp_path)
    (run,) = tables["benchmarks"]
    assert (run["name"], run["commit_id"], run["status"], run["metadata"]) == ("demo", "abc", "ok", {"k": 1})
    assert run["started_at"] and run["finished_at"] and run["error"] is None
    values = [(m["contender"], m["metric"], m["value"], m["labels"]) for m in tables["model_measurements"]]
    assert values == [
        ("xf", "s", 1.0, {"batch": 8}),
        ("xf", "s", 3.0, {"batch": 8}),
        ("hf", "s", 5.0, {"batch": 8}),
    ]
    (device,) = tables["device_measurements"]
    assert (device["cpu_percent"], device["rss_mb"], device["gpu_util_percent"]) == (50.0, 100.0, None)


def test_an_exception_marks_the_run_failed_and_sampling_records_the_device(tmp_path):
    with (
        pytest.raises(ValueError),
        metrics.MetricsRecorder("boom", results_dir=tmp_path, sample_interval=0.05),
    ):
        samples = tmp_path / "device_measurements.csv"
        deadline = time.monotonic() + 30  # the machine may be busy: wait for two samples, not a fixed time
        while time.monotonic() < deadline and (
            not samples.exists() or len(samples.read_text().splitlines()) < 3
        ):
            time.sleep(0.05)
        raise ValueError("bad input")
    (run,) = metrics.read_results(tmp_path)["benchmarks"]
    assert run["status"] == "failed" and run["error"] == "ValueError: bad input"
    samples = metrics.read_results(tmp_path)["device_measurements"]
    assert len(samples) >= 2 and all(s["rss_mb"] > 1 for s in samples)


def test_rows_round_trip_through_postgres_and_csv(tmp_path, database_url):
    with metrics.MetricsRecorder(
        "load",
        results_dir=tmp_path,
        database_url=database_url,
        commit="c1",
        sample_interval=None,
        model="tiny",
    ) as r:
        r.record("xf", {"load_s": 0.5, "tokens_per_s": 120.0}, dtype="bf16")
        r.record("transformers", {"load_s": 1.5}, dtype="bf16")
        r.record_device(metrics.DeviceSample(2.0, 12.5, 300.0, 40.0, 1024.0))
    assert r.database_error is None
    with psycopg.connect(database_url) as c:
        assert c.execute("SELECT version FROM xf_schema").fetchall() == [(metrics.SCHEMA_VERSION,)]
        runs = c.execute(
            "SELECT benchmark_id, name, commit_id, status, metadata, finished_at FROM benchmarks"
        )
        ((bid, name, commit, status, meta, finished),) = runs.fetchall()
        assert (bid, name, commit, status, meta) == (r.benchmark_id, "load", "c1", "ok", {"model": "tiny"})
        assert finished is not None
        db = c.execute(
            "SELECT contender, metric, value, labels FROM model_measurements ORDER BY measurement_id"
        ).fetchall()
        device = c.execute(
            "SELECT cpu_percent, rss_mb, gpu_util_percent, gpu_mem_mb FROM device_measurements"
        )
        assert device.fetchall() == [(12.5, 300.0, 40.0, 1024.0)]
    csv_rows = metrics.read_results(tmp_path)["model_measurements"]
    assert db == [(m["contender"], m["metric"], m["value"], m["labels"]) for m in csv_rows]
    assert db == [
        ("xf", "load_s", 0.5, {"dtype": "bf16"}),
        ("xf", "tokens_per_s", 120.0, {"dtype": "bf16"}),
        ("transformers", "load_s", 1.5, {"dtype": "bf16"}),
    ]
    # A second run on the same database reuses the schema (no second migration) and adds its rows.
    with metrics.MetricsRecorder(
        "load", results_dir=tmp_path, database_url=database_url, sample_interval=None
    ) as r2:
        r2.record("xf", {"load_s": 0.4})
    with psycopg.connect(database_url) as c:
        assert c.execute("SELECT count(*) FROM xf_schema").fetchone() == (1,)
        assert c.execute("SELECT count(*) FROM benchmarks").fetchone() == (2,)


def test_a_newer_schema_is_refused_naming_the_database(database_url, tmp_path):
    with psycopg.connect(database_url, autocommit=True) as c:
        c.execute("CREATE TABLE xf_schema (version INTEGER NOT NULL)")
        c.execute("INSERT INTO xf_schema VALUES (%s)", (metrics.SCHEMA_VERSION + 1,))
    with pytest.raises(metrics.MetricsSchemaError, match="newer than this recorder"):
        metrics.MetricsRecorder("x", results_dir=tmp_path, database_url=database_url, sample_interval=None)


def test_an_unreachable_database_is_reported_once_and_csv_still_written(tmp_path, capsys):
    url = "postgresql://xf@127.0.0.1:1/postgres"
    with metrics.MetricsRecorder("x", results_dir=tmp_path, database_url=url, sample_interval=None) as r:
        r.record("xf", {"s": 1.0})
        r.record("xf", {"s": 2.0})
    assert capsys.readouterr().err.count("metrics: PostgreSQL") == 1
    assert [m["value"] for m in metrics.read_results(tmp_path)["model_measurements"]] == [1.0, 2.0]


def test_a_server_killed_mid_run_is_reported_once_and_the_csv_is_complete(tmp_path, capsys):
    server = postgres.LocalPostgres.start()
    try:
        results = tmp_path / "results"
        recorder = metrics.MetricsRecorder(
            "gen", results_dir=results, database_url=server.url, sample_interval=None
        )
        with recorder:
            recorder.record("xf", {"tokens_per_s": 1.0})
            with psycopg.connect(server.url) as c:
                assert c.execute("SELECT count(*) FROM model_measurements").fetchone() == (1,)
            server.kill()
            for i in range(2, 6):
                recorder.record("xf", {"tokens_per_s": float(i)})
            recorder.record_device(metrics.DeviceSample(3.0, 1.0, 2.0))
        err = capsys.readouterr().err
        assert err.count("metrics: PostgreSQL") == 1 and server.url in err
        assert recorder.database_error is not None
        tables = metrics.read_results(results)
        assert [m["value"] for m in tables["model_measurements"]] == [1.0, 2.0, 3.0, 4.0, 5.0]
        assert len(tables["device_measurements"]) == 1 and tables["benchmarks"][0]["status"] == "ok"
    finally:
        server.stop()
