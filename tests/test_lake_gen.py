"""Demo lake generation in parallel and resumed (profile_core.lake.write_demo_lake jobs / resume, issue 19):
the same bytes whatever the number of workers or interruptions, mismatching folders refused."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from profile_core.cli import main as cli_main
from profile_core.lake import (
    DATA_FILE,
    LAKE_TABLES,
    META_FILE,
    PARTS_DIR,
    LakeError,
    LakeGenError,
    partition_dir,
    read_lake_meta,
    write_demo_lake,
)

N, PARTS, SEED, MONTHS = 600, 3, 11, 6


def digests(lake) -> dict[str, str]:
    """sha256 of every file of a lake, by relative path."""
    return {p.relative_to(lake).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(lake.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "serial"
    calls = []
    meta = write_demo_lake(path, N, PARTS, seed=SEED, months=MONTHS, progress=lambda d, n: calls.append((d, n)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    return path, meta


def test_serial_lake_has_only_the_layout(serial):
    path, meta = serial
    files = digests(path)
    assert sorted(files) == [META_FILE] + sorted(f"{t}/part={k:05d}/{DATA_FILE}" for t in LAKE_TABLES
                                                 for k in range(PARTS))
    assert meta["ranges"] == [[1, 200], [201, 400], [401, 600]]
    assert meta["rows"]["customers"] == N and meta["rows"]["transactions"] > N


def test_two_workers_write_the_same_bytes(serial, tmp_path):
    path, meta = serial
    calls = []
    again = write_demo_lake(tmp_path / "jobs2", N, PARTS, seed=SEED, months=MONTHS, jobs=2,
                            progress=lambda d, n: calls.append((d, n)))
    assert again == meta
    assert digests(tmp_path / "jobs2") == digests(path)
    assert sorted(calls) == [(1, 3), (2, 3), (3, 3)]


def test_interrupted_run_resumes_to_the_same_lake(serial, tmp_path):
    path, meta = serial
    out = tmp_path / "stopped"

    def stop_after_two(done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_demo_lake(out, N, PARTS, seed=SEED, months=MONTHS, progress=stop_after_two)
    assert not (out / META_FILE).exists()
    assert sorted(p.name for p in (out / PARTS_DIR).glob("[0-9]*.json")) == ["0.json", "1.json"]
    # partition 1 half rewritten when the process died: its marker gone, one table's file missing
    (out / PARTS_DIR / "1.json").unlink()
    (partition_dir(out, "behaviors", 1) / DATA_FILE).unlink()
    with pytest.raises(LakeGenError, match="not empty.*--resume"):
        write_demo_lake(out, N, PARTS, seed=SEED, months=MONTHS)

    calls = []
    resumed = write_demo_lake(out, N, PARTS, seed=SEED, months=MONTHS, resume=True, jobs=2,
                              progress=lambda d, n: calls.append((d, n)))
    assert sorted(calls) == [(2, 3), (3, 3)]  # partition 0 kept, 1 and 2 generated
    assert resumed == meta
    assert json.loads((out / META_FILE).read_text(encoding="utf-8")) == read_lake_meta(path)
    assert digests(out) == digests(path)
    # a complete lake of the same arguments is returned as it is
    assert write_demo_lake(out, N, PARTS, seed=SEED, months=MONTHS, resume=True) == meta


def test_resume_regenerates_partition_zero_in_a_worker_pool(serial, tmp_path):
    path, meta = serial
    out = tmp_path / "lost0"

    def stop_at_the_end(done, total):
        if done == total:  # every partition written, _lake.json not yet
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_demo_lake(out, N, PARTS, seed=SEED, months=MONTHS, progress=stop_at_the_end)
    assert sorted(p.name for p in (out / PARTS_DIR).iterdir()) == ["0.json", "1.json", "2.json", "_run.json"]
    (out / PARTS_DIR / "0.json").unlink()  # partitions 0 and 2 half written: markers gone, files damaged
    (out / PARTS_DIR / "2.json").unlink()
    (partition_dir(out, "customers", 0) / DATA_FILE).write_bytes(b"half")
    (partition_dir(out, "credit_records", 2) / f".{DATA_FILE}.tmp").write_bytes(b"half")
    (partition_dir(out, "transactions", 1) / DATA_FILE).unlink()  # a marker whose partition lost a file
    calls = []
    assert write_demo_lake(out, N, PARTS, seed=SEED, months=MONTHS, resume=True, jobs=2,
                           progress=lambda d, n: calls.append((d, n))) == meta
    assert sorted(calls) == [(1, 3), (2, 3), (3, 3)]  # all three generated again
    assert digests(out) == digests(path)


def test_mismatching_resume_is_refused(serial, tmp_path):
    path, _ = serial
    with pytest.raises(LakeGenError, match=r"generated with seed=11, not the 12 asked for") as err:
        write_demo_lake(path, N, PARTS, seed=SEED + 1, months=MONTHS, resume=True)
    assert "seed=11" in err.value.message("zh") and "不符" in err.value.message("zh")
    assert isinstance(err.value, LakeError)

    out = tmp_path / "partial"
    shutil.copytree(path, out)
    (out / META_FILE).unlink()
    (out / PARTS_DIR).mkdir()
    (out / PARTS_DIR / "0.json").write_text(json.dumps({"spec": {"format": 1, "n_customers": N, "partitions": 4,
                                                                 "seed": SEED, "months": MONTHS,
                                                                 "end": "2026-10-31"},
                                                        "k": 0, "range": [1, 150], "rows": {}}), encoding="utf-8")
    with pytest.raises(LakeGenError, match="partitions=4, not the 3 asked for"):
        write_demo_lake(out, N, PARTS, seed=SEED, months=MONTHS, resume=True)

    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(LakeGenError, match="notes.txt, which is not part of a lake"):
        write_demo_lake(foreign, N, PARTS, seed=SEED, months=MONTHS, resume=True)
    with pytest.raises(LakeGenError, match="0 jobs"):
        write_demo_lake(tmp_path / "x", N, PARTS, jobs=0)


def test_cli_jobs_and_resume(serial, tmp_path, capsys):
    path, meta = serial
    out = tmp_path / "cli"
    args = ["demo-data", "--customers", str(N), "--partitions", str(PARTS), "--seed", str(SEED), "--out", str(out)]
    assert cli_main([*args, "--jobs", "2"]) == 0
    assert f"{N} customers in {PARTS} partitions" in capsys.readouterr().out
    assert read_lake_meta(out)["rows"] == write_demo_lake(tmp_path / "ref", N, PARTS, seed=SEED)["rows"]
    assert digests(out) == digests(tmp_path / "ref")
    assert cli_main([*args, "--resume"]) == 0
    assert digests(out) == digests(tmp_path / "ref")
    capsys.readouterr()
    assert cli_main(["--lang", "en", *args[:-2], "--out", str(path), "--resume"]) == 2  # months 12, not 6
    assert "was generated with months=6, not the 12 asked for" in capsys.readouterr().err


def test_ray_tasks_write_the_same_bytes(serial, tmp_path):
    pytest.importorskip("ray")
    path, meta = serial
    out = tmp_path / "ray"
    calls = []
    assert write_demo_lake(out, N, PARTS, seed=SEED, months=MONTHS, engine="ray", jobs=2,
                           progress=lambda d, n: calls.append((d, n))) == meta
    assert sorted(calls) == [(1, 3), (2, 3), (3, 3)]
    assert digests(out) == digests(path)
    with pytest.raises(LakeGenError, match="engine spark is unknown"):
        write_demo_lake(tmp_path / "x", N, PARTS, engine="spark")
