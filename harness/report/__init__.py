"""HTML reports of a sweep: result files → one table → Pareto fronts → reports/<sweep>/index.html.

`build()` is the whole pipeline; `python -m harness report <dirs>` and the end-of-multirun callback call it.
"""

from harness.report.build import Section, build

__all__ = ["Section", "build"]
