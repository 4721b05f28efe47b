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
