"""The result file: one versioned JSON per run, its canonical key, and atomic writing.

Field definitions live in docs/results.md; reports, the CI gate and users' scripts read them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness import adaptive, scenarios
from harness.scenarios.schemas import LEGACY_WORKLOAD

SCHEMA = "harness.result/1"
RESULT_FILE = "result.json"
STATUSES = ("ok", "oom", "unsupported", "timeout", "error", "killed", "predicted-oom")
# A run with one of these statuses will give the same answer again: resume skips it.
# `timeout`, `error` and `killed` (a signal without kernel evidence of OOM) may be passing faults, so a
# re-run tries them again. `predicted-oom` was never run: a re-run predicts again (feasibility.force=true runs it).
COMPLETE_STATUSES = ("ok", "oom", "unsupported")
# Top-level fields every result must have, with their JSON types: a file without them is damaged.
REQUIRED_FIELDS: dict[str, type | tuple[type, ...]] = {
    "key": str,
    "key_fields": dict,
    "config_hash": str,
    "status": str,
    "config": dict,
    "metrics": dict,
}


def key_fields(config: Mapping[str, Any]) -> dict[str, Any]:
    """The measured parameters of a run (what a run *is*), from its resolved config."""
    model = config["model"]
    # weights=random (the default) and its unused budget stay out of the hash, so keys from before the
    # `weights` field existed still match; trained weights are another run
    skip = ("name", "weights", "train_steps") if model.get("weights", "random") == "random" else ("name",)
    arch = json.dumps({k: v for k, v in model.items() if k not in skip}, sort_keys=True)
    w = config["workload"]
    fields = {
        "workload": w["name"],
        "model": model["name"],
        "precision": config["precision"]["name"],
        "batch_size": config["batch_size"],
        "seq_len": config["seq_len"],
    }
    fields.update(scenarios.spec(w["name"], strict=False).key_fields(config))  # what this workload is (Spec.key_fields)
    if w.get("draft_model"):  # only then: a run without a draft keeps the key it had before
        fields.update(draft_model=w["draft_model"], draft_tokens=w["draft_tokens"])
    fields.update(lever_key_fields(w))  # the training levers a run set (none: the key of before)
    fields["gpus"] = config["gpus"]  # per node
    nnodes = int((config.get("dist") or {}).get("nnodes") or 1)
    if nnodes > 1:  # only then: a one-node run keeps the key it had; two nodes of gpus=1 are another run
        fields["nnodes"] = nnodes
    fields.update(
        seed=config["seed"],
        device=config["hardware"]["device"],
        # the model's numbers, hashed: an override such as model.hidden_size=256 is another run
        arch=hashlib.sha256(arch.encode()).hexdigest()[:8],
    )
    fields.update(lever_fields(config))
    if config.get("memory_limit_bytes") is not None:
        # the limit decides whether a run can succeed (oom is final): only set limits join the key, so the
        # keys of runs without one stay as they were
        fields["memory_limit_bytes"] = config["memory_limit_bytes"]
    return fields


# The training levers, in the key only away from their defaults: a run from before them keeps its key
LEVER_DEFAULTS = {"grad_accum_steps": 1, "grad_checkpointing": False}


def lever_key_fields(workload: Mapping[str, Any]) -> dict[str, Any]:
    """The training levers a run set (workload.grad_accum_steps != 1, workload.grad_checkpointing=true)."""
    return {k: workload[k] for k, default in LEVER_DEFAULTS.items() if workload.get(k, default) != default}


def lever_fields(config: Mapping[str, Any]) -> dict[str, Any]:
    """The backend and the transforms (with their settings) as the key shows them, each only where it is not
    at its default (backend=eager, transforms=[precision]), so that keys from before them stay as they were."""
    from harness import transforms

    out: dict[str, Any] = {}
    b = config.get("backend") or {}
    if b.get("name", "eager") != "eager":
        out["backend"] = backend_tag(b)
    tag = transforms.tag(config)
    if tag is not None:
        out["transforms"] = tag
    return out


def backend_tag(b: Mapping[str, Any]) -> str:
    """ "compile", "compile-reduce-overhead", "compile-fullgraph-dynamic-nostatic": the settings not at default."""
    parts = [b["name"]]
    if b.get("mode", "default") != "default":
        parts.append(b["mode"])
    parts += [flag for flag, on in (("fullgraph", b.get("fullgraph")), ("dynamic", b.get("dynamic"))) if on]
    if b["name"] == "compile" and not b.get("static_cache", True):
        parts.append("nostatic")
    return "-".join(parts)


def canonical_key(config: Mapping[str, Any]) -> str:
    """A stable string that matches the same measured configuration across sweeps."""
    return " ".join(f"{k}={v}" for k, v in key_fields(config).items())


# Settings that change how a run is supervised or where it is stored, not what it measures or reports.
# memory_limit_bytes is not here: an `oom` under one limit says nothing about a higher one.
# timeout_s is: a timeout is never final (resume retries it), so it cannot stand in for another limit's run.
# interference holds the thresholds that judge a run disturbed, not what it measures (the figures are kept).
# launcher is: preload or spawn start the same measured run (docs/launch.md), so switching re-measures nothing.
# feasibility decides whether a run is launched, not what it measures.
VOLATILE = ("sweep", "results_dir", "resume", "timeout_s", "interference", "launcher", "feasibility")
# Settings added after results existed, left out of the hash at these values (their defaults), so a run from
# before them keeps its hash and folder; `lora` counts only with finetune=lora (full fine-tuning never reads it).
ADDED_AT_DEFAULT = {
    ("workload", "target_accuracy"): None,
    ("workload", "init"): "random",
    ("data", "label_column"): "label",
    ("workload", "draft_model"): None,
    ("workload", "draft_tokens"): 4,
    ("serving", "max_context_tokens"): None,
    ("workload", "grad_accum_steps"): 1,
    ("workload", "grad_checkpointing"): False,
}


def _without_unused_additions(kept: dict[str, Any]) -> dict[str, Any]:
    # sections a workload added after results existed (Spec.added_sections): out of every other one's hash
    name = (kept.get("workload") or {}).get("name")
    unused = {k for s in scenarios.all_specs() if s.name != name for k in s.added_sections}
    unused -= set(scenarios.spec(name, strict=False).added_sections)
    kept = {k: v for k, v in kept.items() if k not in unused}
    if kept.get("finetune", "full") == "full":
        kept = {k: v for k, v in kept.items() if k not in ("finetune", "lora")}
    kept = _without_default_levers(kept)
    for (section, key), default in ADDED_AT_DEFAULT.items():
        node = kept.get(section)
        if isinstance(node, Mapping) and key in node and node[key] == default:
            kept[section] = {k: v for k, v in node.items() if k != key}
    return kept


def _without_default_levers(kept: dict[str, Any]) -> dict[str, Any]:
    """backend=eager and transforms=[precision] hash as before they existed; a transform's settings count
    only when it is listed."""
    if (kept.get("backend") or {}).get("name", "eager") == "eager":
        kept = {k: v for k, v in kept.items() if k != "backend"}
    chain = list(kept.get("transforms") or ["precision"])
    if chain == ["precision"]:
        kept = {k: v for k, v in kept.items() if k != "transforms"}
    listed = {k: v for k, v in (kept.get("transform") or {}).items() if k in chain}
    kept = {k: v for k, v in kept.items() if k != "transform"}
    return {**kept, "transform": listed} if listed else kept


def config_hash(config: Mapping[str, Any]) -> str:
    """8 hex digits over the whole config but VOLATILE: two runs of a sweep differ in it whenever any
    setting differs (cost.mode, energy.enabled, repeats ...), even where their canonical key is the same."""
    kept = {k: v for k, v in config.items() if k not in VOLATILE and k != "hydra"}
    if isinstance(kept.get("dist"), Mapping):  # dist.timeout_s supervises collectives, as timeout_s does the run
        kept["dist"] = {k: v for k, v in kept["dist"].items() if k != "timeout_s"}
    if config.get("repeats") != adaptive.AUTO:  # the stopping rule is unused: a fixed count hashes as it always did
        kept = {k: v for k, v in kept.items() if k not in adaptive.KEYS}
    if isinstance(kept.get("workload"), Mapping):  # hashed as the one shared node of before (LEGACY_WORKLOAD)
        kept["workload"] = {**LEGACY_WORKLOAD, **kept["workload"]}
    kept = _without_unused_additions(kept)
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:8]


def run_slug(config: Mapping[str, Any]) -> str:
    """A readable, filesystem-safe folder name for a run, unique per configuration."""
    f = key_fields(config)
    work = scenarios.spec(f["workload"], strict=False).slug_work(f)  # the work done, as the workload names it
    if f.get("draft_model"):
        work += f"-draft{f['draft_model']}k{f['draft_tokens']}"
    work += f"-ga{f['grad_accum_steps']}" if "grad_accum_steps" in f else ""
    work += "-ckpt" if f.get("grad_checkpointing") else ""
    levers = "".join(f"-{f[k]}" for k in ("backend", "transforms") if k in f)  # only where not at default
    slug = (
        f"{f['workload']}-{f['model']}-{f['precision']}{levers}-bs{f['batch_size']}-seq{f['seq_len']}"
        f"-{work}-g{f['gpus']}-s{f['seed']}-{f['device']}-{config_hash(config)}"
    )
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", slug)


def write_atomic(path: Path, obj: Mapping[str, Any]) -> None:
    """Write JSON so that readers see either the old file or the whole new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=False, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def problem(data: Any) -> str | None:
    """What is wrong with a parsed result file, or None when it is a usable harness result."""
    if not isinstance(data, dict):
        return f"not a JSON object ({type(data).__name__})"
    if data.get("schema") != SCHEMA:
        return f"schema {data.get('schema')!r} is not {SCHEMA}"
    for name, kind in REQUIRED_FIELDS.items():
        if name not in data:
            return f"field {name!r} is missing"
        if not isinstance(data[name], kind):
            return f"field {name!r} is {type(data[name]).__name__}, not {kind.__name__}"
    if data["status"] not in STATUSES:
        return f"status {data['status']!r} is not one of {', '.join(STATUSES)}"
    if data["status"] == "ok" and not data["metrics"]:
        return "status 'ok' without metrics"
    return None


def read(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(result, None) for a usable result file; (None, what is wrong) otherwise; (None, None) when absent."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"unreadable ({exc})"
    try:
        data = json.loads(text)
    except ValueError as exc:
        what = "empty" if not text.strip() else "truncated or not JSON"
        return None, f"{what} ({exc})"
    why = problem(data)
    return (None, why) if why else (data, None)


def warn_damaged(path: Path, why: str, action: str) -> None:
    """The one warning line for a damaged result file: its path, what is wrong, what happens to it."""
    print(f"harness: warning: {path}: damaged result ({why}); {action}", file=sys.stderr, flush=True)


def load(path: Path) -> dict[str, Any] | None:
    """The result at `path`, or None if it is missing, unreadable or not a usable harness result."""
    return read(path)[0]


def is_complete(result: Mapping[str, Any] | None, config: Mapping[str, Any]) -> bool:
    """A result of this very configuration whose status would not change on a re-run."""
    return (
        bool(result)
        and problem(result) is None  # `ok` without metrics, say, is damaged: measured again
        and result.get("key") == canonical_key(config)
        and result.get("config_hash") == config_hash(config)
        and result.get("status") in COMPLETE_STATUSES
    )


def iter_results(root: Path, damaged: list[tuple[Path, str]] | None = None) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every usable result file under `root`, in path order. Damaged ones are appended to `damaged`
    as (path, what is wrong) when a list is given, else each is named in one warning line."""
    for path in sorted(Path(root).rglob(RESULT_FILE)):
        data, why = read(path)
        if data is not None:
            yield path, data
        elif why is not None:
            if damaged is None:
                warn_damaged(path, why, "left out")
            else:
                damaged.append((path, why))


def make_result(
    config: Mapping[str, Any],
    status: str,
    reason: str | None,
    environment: Mapping[str, Any],
    **sections: Any,
) -> dict[str, Any]:
    """Assemble one result record (schema harness.result/1); see docs/results.md for every field."""
    if status not in STATUSES:
        raise ValueError(f"status={status!r} is not one of {STATUSES}")
    return {
        "schema": SCHEMA,
        "key": canonical_key(config),
        "key_fields": key_fields(config),
        "config_hash": config_hash(config),
        "status": status,
        "reason": reason,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": dict(config),
        "environment": dict(environment),
        **_empty_sections(),
        **sections,  # the measured sections, in the order above, then extras such as traceback and launcher
    }


def _empty_sections() -> dict[str, Any]:
    """Every section a record holds, as written when the run did not get to fill it: null means "not
    measured" (energy, cost and quality are measured by later stages), never zero."""
    return {
        "model": None,
        "precision": None,
        "hardware": None,
        "warnings": [],
        "metrics": {},
        "repeats": [],
        "timing": {},
        "energy": None,
        "cost": None,
        "quality": None,
        "weights": None,
    }
