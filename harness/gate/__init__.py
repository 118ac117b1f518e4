"""The CI regression gate: match two result sets by key, judge each metric beyond noise, exit with the verdict.

Modules: `stats` (bootstrap ratio of medians, decision rules), `settings` (conf/gate/*.yaml schema),
`baseline` (reading result sets, the committed baseline file), `compare` (matching, verdicts, exit code),
`render` (Markdown summary, HTML fragment), `export` (pytest-benchmark JSON), `cli`. Reproduce commands
come from harness.reproduce (shared with the report); default metrics from harness.metrics.
"""
