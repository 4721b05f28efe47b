"""Live delivery: the hub (one tail loop per process) and follow() (replay → live per subscriber)."""
