"""Workloads: what is timed inside a run (inference now; training arrives in its own module)."""
