"""The seams: each workload's keys come from its scenario, unchanged; the launcher side imports no torch;
no import circle among the run core's modules."""

from __future__ import annotations

import json
from pathlib import Path

import seams_golden

GOLDEN = json.loads((Path(__file__).parent / "data" / "seams_golden.json").read_text())


def test_keys_hashes_and_slugs_are_those_of_before_the_move():
    # tests/data/seams_golden.json was written at 5e07a75, when harness/results.py branched on workload names
    assert seams_golden.compute() == GOLDEN


def test_objectives_summary_columns_and_scaling_are_those_of_before_the_move():
    # written at 5e07a75 (harness.metrics.OBJECTIVES, SCALING_THROUGHPUT, summary_columns, summary._extra,
    # report.answer.SPECS), before each scenario declared its own (Spec.objectives, summary, scaling_throughput,
    # summary_cost, answer)
    from harness import metrics, summary
    from harness.report import answer

    expected = json.loads((Path(__file__).parent / "data" / "seams_registry_golden.json").read_text())
    shipped = ("inference", "training", "serving", "classification", "distill")
    now = {
        "obj": {s: o for s, o in metrics.OBJECTIVES.items() if s in shipped},  # those of then (classify came later)
        "scal": metrics.SCALING_THROUGHPUT,
        "sum": {s: [c.name for c in metrics.summary_columns(s)] for s in shipped},
        "extra": {s: summary._extra(s, None) for s in shipped},
        "answer": {s: repr(answer.spec_for(s)) for s in shipped},
    }
    assert json.loads(json.dumps(now)) == expected


def _import_graph() -> dict[str, set[str]]:
    """harness module -> the harness modules it imports, at the top or inside a function (ast, not run)."""
    import ast

    root = Path(__file__).resolve().parent.parent / "harness"
    files = {".".join(f.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__"): f
             for f in root.rglob("*.py")}  # fmt: skip
    graph = {}
    for name, f in files.items():
        deps = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("harness"):
                deps |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files else node.module
                         for a in node.names}  # fmt: skip
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("harness")}
        graph[name] = {d for d in deps if d in files and d != name}
    return graph


def _reaches(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for d in graph[todo.pop()] - seen:
            seen.add(d)
            todo.append(d)
    return seen


def test_no_harness_module_imports_itself_through_others():
    # checkpoints -> launch -> forkserver -> worker -> checkpoints was one: making a checkpoint (a launch) is
    # harness.pretrain's now, and the worker only reads the cache (harness.checkpoints); the scenarios'
    # Specs -> checkpoints -> results -> scenarios was another (the worker now asks checkpoints.model_config)
    graph = _import_graph()
    assert "harness.launch" not in _reaches(graph, "harness.checkpoints")
    assert "harness.launch" not in _reaches(graph, "harness.worker")
    assert [m for m in graph if m in _reaches(graph, m)] == []


def test_the_graph_sees_a_circle_where_there_is_one():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert "a" in _reaches(graph, "a") and "d" not in _reaches(graph, "d")


def _workload_branches(names: set[str]) -> list[str]:
    """`x == "training"`, `w in ("classification", "distill")` ... in harness modules outside the scenarios'."""
    import ast

    root = Path(__file__).resolve().parent.parent / "harness"
    found = []
    for f in sorted(root.rglob("*.py")):
        if {"scenarios", "serving"} & set(f.relative_to(root).parts[:-1]):
            continue  # the scenarios' own modules (harness/serving/ is the serving scenario's)
        for node in ast.walk(ast.parse(f.read_text())):
            if not isinstance(node, ast.Compare):
                continue
            text = ast.unparse(node)
            if "quality_task" in text:  # the quality section's task kind (quality.task), not a workload
                continue
            parts = [node.left, *node.comparators]
            consts = [c for p in parts for c in ([p] if isinstance(p, ast.Constant) else getattr(p, "elts", []))]
            if any(isinstance(c, ast.Constant) and c.value in names for c in consts):
                found.append(f"{f.relative_to(root.parent)}:{node.lineno}: {text}")
    return found


def test_no_module_outside_the_scenarios_branches_on_a_workload_name():
    from harness import scenarios

    assert _workload_branches(set(scenarios.names())) == []
    # and the check sees a branch where there is one: validation's `d.source == "hf"` (a data source, not a workload)
    assert any(b.startswith("harness/validation.py") and "'hf'" in b for b in _workload_branches({"hf"}))


def test_the_launcher_side_imports_no_torch():
    # the CLI, validation, keys, the launcher, the summary and the report ask the scenarios' Specs, which are
    # declared without torch (harness/scenarios/specs.py); the worker's Scenario classes import it
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from harness import app, cli, launch, memory_model, results, summary, validation\n"
        "from harness.report import build\n"
        "from harness import scenarios\n"
        "for name in scenarios.names():\n"
        "    s = scenarios.spec(name); s.objectives, s.summary, s.answer\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


# Every access to a backend's module outside harness/backends/, with why it cannot go through a backend method.
# A new one fails test_every_module_access_is_listed_with_its_reason: add a method to the backend (base.Backend),
# or add it here with its reason.
MODULE_ACCESS = {
    "harness/scenarios/classification.py::Classification.run": (
        2,
        "finetune=lora wraps the module in peft adapters (harness.finetune.apply): a transform of the model, "
        "the wrapped module takes its place in the backend",
    ),
    "harness/scenarios/inference.py::_Draft.__init__": (
        1,
        "speculative decoding (harness.speculative) verifies the draft's k tokens in one forward of the target "
        "and reads every position's logits, rolling its cache back; the backend's forward keeps the last one's",
    ),
    "harness/scenarios/serving.py::_served": (
        1,
        "the in-process engine is transformers' continuous batching (generate_batch), which takes the module",
    ),
    "harness/scenarios/serving.py::_draft": (
        1,
        "serving.engine=sequential with a draft verifies its k tokens in one forward of the target module "
        "(harness.speculative.Draft), as inference's speculative target does",
    ),
}


HARNESS = Path(__file__).resolve().parent.parent / "harness"


def _module_accesses(root: Path = HARNESS) -> dict[str, int]:
    """`<anything>backend.model` in harness modules outside harness/backends/: 'path::Class.function' -> count."""
    import ast
    from collections import Counter

    found: Counter[str] = Counter()
    for f in sorted(root.rglob("*.py")):
        if f.relative_to(root).parts[0] == "backends":
            continue

        def visit(node: ast.AST, where: str, path: Path = f) -> None:
            for child in ast.iter_child_nodes(node):
                inner = where
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    inner = f"{where}.{child.name}" if where else child.name
                if (
                    isinstance(child, ast.Attribute)
                    and child.attr == "model"
                    and ast.unparse(child.value).split(".")[-1] == "backend"
                ):
                    found[f"{path.relative_to(root.parent)}::{inner}"] += 1
                visit(child, inner)

        visit(ast.parse(f.read_text()), "")
    return dict(found)


def test_every_module_access_is_listed_with_its_reason():
    # the scenarios, the worker and quality call the backend's methods (harness/backends/base.py: train_step,
    # classify, generate, logits, distribute, save ...); what still reaches the module says why here
    assert _module_accesses() == {where: count for where, (count, _) in MODULE_ACCESS.items()}
    assert all(len(why) > 40 for _, why in MODULE_ACCESS.values())


def test_the_module_access_check_sees_one_where_there_is_one(tmp_path):
    root = tmp_path / "harness"
    (root / "scenarios").mkdir(parents=True)
    (root / "backends").mkdir()
    code = "class S:\n    def run(self, ctx, backend):\n"
    code += "        return ctx.backend.model.eval(), backend.model, self.model\n"
    (root / "scenarios" / "new.py").write_text(code)
    (root / "backends" / "own.py").write_text(code)  # a backend's own module is its business
    assert _module_accesses(root) == {"harness/scenarios/new.py::S.run": 2}


def test_a_result_of_the_one_shared_workload_node_reads_as_the_same_run():
    # before per-workload schemas every config held every workload's fields (harness.config.LEGACY_WORKLOAD);
    # such a file keeps its key, hash, slug and reproduce command, and the node now holds its own fields only
    from composed import resolved

    from harness import reproduce, results, scenarios
    from harness.config import LEGACY_WORKLOAD, schema_fields

    for name, overrides in seams_golden.CASES.items():
        new = resolved(*overrides)
        old = {**new, "workload": {**LEGACY_WORKLOAD, **new["workload"]}}
        assert set(new["workload"]) == set(schema_fields(scenarios.spec(new["workload"]["name"]).schema)), name
        for cfg in (new, old):
            got = {k: getattr(results, k)(cfg) for k in ("canonical_key", "key_fields", "config_hash", "run_slug")}
            want = GOLDEN[name]
            assert got == {"canonical_key": want["key"], **{k: want[k] for k in got if k != "canonical_key"}}, name
        assert reproduce.command(old) == reproduce.command(new), name
