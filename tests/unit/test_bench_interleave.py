"""The ingest bench's schedule (bench/ingest.py ``interleaved``): each subject's runs of a shape
are taken in turn, so a drift of the machine's speed lands on every side of a ratio alike."""

from __future__ import annotations

from orchlog.bench.ingest import REPEATS, Run, Shape, interleaved


def test_runs_alternate_between_subjects_shape_by_shape() -> None:
    calls: list[tuple[str, Shape]] = []

    def subject(name: str, rate: float, committed: bool = False) -> Run:
        def run(shape: Shape) -> dict[str, float]:
            calls.append((name, shape))
            n = sum(1 for c in calls if c[0] == name)
            return {"events_per_s": rate * n, "cpu_us": 1.0, **({"committed": shape[2]} if committed else {})}

        return run

    shapes = [(2, 10, 100), (1, 100, 300)]
    out = interleaved({"raw": subject("raw", 10), "mine": subject("mine", 1, committed=True)}, shapes)
    first, second = [("raw", shapes[0]), ("mine", shapes[0])], [("raw", shapes[1]), ("mine", shapes[1])]
    per_shape = first * REPEATS + second * REPEATS
    assert calls == per_shape
    assert out["raw"][(2, 10)]["runs_events_per_s"] == [10, 20, 30]
    assert out["raw"][(2, 10)]["events_per_s"] == 20  # the median of the shape's three runs
    assert out["mine"][(1, 100)]["runs_events_per_s"] == [4, 5, 6]
    assert out["mine"][(1, 100)]["committed"] == 300 * REPEATS == out["mine"][(1, 100)]["expected"]
    assert "committed" not in out["raw"][(2, 10)]


def test_ingest_table_puts_each_orchlog_case_beside_its_baselines() -> None:
    """bench-results.md opens with this table: the baselines of the same shape, the ratios, the
    prefilled case's ratio to the first table size, and PostgreSQL next to COPY."""
    from orchlog.bench.ingest import table

    base = {"clients": 4, "batch": 1000}
    rows = [
        {"name": "ingest_raw", **base, "events_per_s": 100_000},
        {"name": "ingest_naive_http", **base, "events_per_s": 14_000},
        {"name": "ingest_orchlog", **base, "rows_before": 0, "events_per_s": 70_000, "cpu_us_per_event": 14.0}
        | {"x_naive": 5.0, "x_raw": 0.7, "x_redis": None, "x_first_rows": 1.0},
        {"name": "ingest_orchlog", **base, "rows_before": 5_000_000, "events_per_s": 63_000, "cpu_us_per_event": 15.1}
        | {"x_naive": 4.5, "x_raw": 0.63, "x_redis": None, "x_first_rows": 0.9},
        {"name": "ingest_postgres_copy", "clients": 8, "batch": 100, "events_per_s": 50_000},
        {"name": "ingest_postgres_orchlog", "clients": 8, "batch": 100, "events_per_s": 40_000}
        | {"cpu_us_per_event": 9.6, "x_copy": 0.8},
    ]
    lines = table(rows).splitlines()
    assert (
        lines[2]
        == "| 4 x 1,000-event POSTs | 70,000 ev/s, 14.0 µs CPU/ev | 14,000 | 100,000 |  | 5.0x naive, 0.7x raw |"
    )
    assert lines[3].startswith("| 4 x 1,000-event POSTs, 5,000,000 rows stored | 63,000 ev/s")
    assert lines[3].endswith("| 4.5x naive, 0.63x raw, 0.9x the first table size |")
    assert (
        lines[4]
        == "| PostgreSQL, 8 x 100-event POSTs | 40,000 ev/s, 9.6 µs CPU/ev | | asyncpg COPY 50,000 | | 0.8x COPY |"
    )
    assert table([{"name": "fanout"}]) == ""
