"""Hydra callbacks: what happens once a whole multirun has ended."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from harness import results, scaling, summary


class SweepSummary(Callback):
    """Print the table of every result in the sweep folder when the multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        damaged: list = []  # named once, by the report; counted here
        records = [r for _, r in results.iter_results(sweep_dir, damaged)]
        if damaged:
            print(f"\n{len(damaged)} damaged result file(s) left out, e.g. {damaged[0][0]}: {damaged[0][1]}")
        if not records:
            print(f"\nno results in {sweep_dir}")
            return
        counts = Counter(r["status"] for r in records)
        print("\n" + summary.table(records))
        rows = scaling.efficiency(records)
        if rows:
            results.write_atomic(sweep_dir / "scaling.json", {"schema": "harness.scaling/1", "rows": rows})
            for row in rows:
                note = " (CPU ranks: a simulation, not a GPU figure)" if row["cpu_ranks"] else ""
                print(f"scaling: gpus={row['gpus']} efficiency {row['efficiency']:.2f} {row['config']}{note}")
        print(f"\n{len(records)} results ({', '.join(f'{n} {s}' for s, n in counts.most_common())}) in {sweep_dir}")


def write_report(sweep_dir: Path, floor: float | None) -> None:
    """reports/<sweep>/index.html from every result under `sweep_dir`, its path printed last; a failure is
    said in one line with the command that retries, never raised (the results are safe on disk)."""
    if not any(True for _ in results.iter_results(sweep_dir, [])):  # build() names damaged files
        return
    try:
        from harness.report import build

        index = build([sweep_dir], floor=floor)
    except Exception as exc:  # noqa: BLE001 - the results are safe on disk; a report failure must not hide them
        print(f"report: not written ({type(exc).__name__}: {exc}); retry: python -m harness report {sweep_dir}")
        return
    print(f"report: {index}", flush=True)


class SweepReport(Callback):
    """Write reports/<sweep>/index.html when the multirun ends (rebuild: `python -m harness report`)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        write_report(Path(config.hydra.sweep.dir), config.get("quality", {}).get("floor"))
