"""Making harness-trained weights (`model.weights=trained`, `workload.init=checkpoint`): the training run that
fills the checkpoint cache (harness.checkpoints), launched as a run of its own (harness.launch).

Split from harness.checkpoints so that the worker, which reads the cache, never imports the launcher: the
launcher starts the worker, and only the launcher's side (harness.app) makes checkpoints.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from harness import checkpoints, environment, finetuned, launch, results


class CheckpointError(RuntimeError):
    """The training run that makes a checkpoint did not finish ok; `result` is that run's result."""

    def __init__(self, message: str, result: Mapping[str, Any]):
        super().__init__(message)
        self.result = result


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, also if this process dies
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure(config: Mapping[str, Any], say: Any = print) -> dict[str, Any]:
    """Train the checkpoint unless the cache has it; returns its training result. Raises CheckpointError when
    the training run fails (its result, with the reason, stays in the cache folder)."""
    model_cfg = config["model"]
    where = checkpoints.folder(model_cfg)
    with _locked(where / ".lock"):
        found = checkpoints.training_result(model_cfg)
        if found is not None:
            return found
        say(
            f"    training {model_cfg['name']} once for model.weights=trained -> {checkpoints.folder(model_cfg)}",
            flush=True,
        )
        result = launch.run_isolated(checkpoints.training_config(config), where / "training")
    if result["status"] != "ok":
        raise CheckpointError(f"training the checkpoint failed ({result['status']}): {result.get('reason')}", result)
    say(f"    trained in {result['timing']['run_wall_s']:.1f} s, {_loss_text(result)}", flush=True)
    return result


def _loss_text(result: Mapping[str, Any]) -> str:
    m = result["metrics"]
    return f"held-out loss {m['eval_loss_initial']:.3f} -> {m['eval_loss']:.3f} nats/token"


def ensure_classifier(config: Mapping[str, Any], say: Any = print) -> dict[str, Any]:
    """Fine-tune the classifier unless the cache has it (pretraining it first where workload.init=checkpoint);
    returns the fine-tuning run's result (harness.finetuned names and reads it). Raises CheckpointError when
    that run fails."""
    ft, run_dir = finetuned.finetune_config(config), finetuned.folder(config) / "classification"
    with _locked(finetuned.folder(config) / ".lock"):
        found = results.load(run_dir / results.RESULT_FILE)
        weights = run_dir / checkpoints.CHECKPOINT_DIR / "model.safetensors"
        if found and found.get("status") == "ok" and weights.is_file():
            return found
        if checkpoints.is_trained(ft):  # init=checkpoint on a preset: its pretrained weights first (cached)
            ensure(ft, say)
        method = ft.get("finetune", "full")
        say(f"    fine-tuning the classifier once ({method}) for workload=classify -> {run_dir}", flush=True)
        result = launch.run_isolated(ft, run_dir)
    if result["status"] != "ok":
        message = f"fine-tuning the classifier failed ({result['status']}): {result.get('reason')}"
        raise CheckpointError(message, result)
    say(f"    fine-tuned in {result['timing']['run_wall_s']:.1f} s, {_accuracy_text(result)}", flush=True)
    return result


def _accuracy_text(result: Mapping[str, Any]) -> str:
    m = result["metrics"]
    return f"held-out accuracy {m['eval_accuracy_initial']:.3f} -> {m['eval_accuracy']:.3f}"


def prepare(config: Mapping[str, Any], run_dir: Path) -> dict[str, Any] | None:
    """Before an inference run on trained weights: make sure the checkpoint exists. Returns None when the run
    can go ahead, else the run's own failed result (written to run_dir), so a sweep goes on."""
    made_here = finetuned.harness_made(config)  # a classify run's classifier, fine-tuned by the harness
    if not checkpoints.is_trained(config) and not made_here:
        return None
    try:
        if made_here:
            ensure_classifier(config)
        else:
            ensure(config)
        if config["workload"].get("draft_model"):  # the draft's weights follow model.weights (harness.speculative)
            ensure(checkpoints.draft_config(config))
    except CheckpointError as exc:
        status = exc.result["status"] if exc.result["status"] in ("oom", "unsupported") else "error"
        extra = {k: exc.result[k] for k in ("traceback", "log_tail") if exc.result.get(k)}
        result = results.make_result(config, status, str(exc)[:2000], environment.capture(), **extra)
        results.write_atomic(Path(run_dir) / results.RESULT_FILE, result)
        return result
    return None
