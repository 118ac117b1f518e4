"""What a load run sends (serving.dataset): synthetic single requests (`random`), conversations from a
ShareGPT-style JSON file (`sharegpt`), a replayed trace of arrivals and lengths (`trace`), or a synthetic
shared-prefix set (`shared_prefix`). docs/serving.md, "Datasets and traces", describes each format.

Conversations: turn k's prompt carries the whole history, with the file's own answers as the earlier
assistant turns (so every run sends the same prompts, and turn k's prompt extends turn k-1's, as a chat
client's does: what a prefix cache serves); its output length is the file's answer's length. A trace keeps
its own arrival times (scaled by serving.trace_speed) and lengths; its prompts are corpus windows of those
lengths. A conversation's history past serving.max_context_tokens (default: the model's context less the
output length) loses its oldest exchanges first, counted per request; a prompt still longer than the
model's context is cut from the left (the latest text kept), and counted.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.serving import prompts
from harness.serving.prompts import Request

KINDS = ("random", "sharegpt", "trace", "shared_prefix")
USER, ASSISTANT = ("human", "user"), ("gpt", "assistant", "chatgpt", "bard", "model")
# trace columns: (name, seconds per unit); Azure LLM inference traces: TIMESTAMP (a date-time, or seconds),
# ContextTokens, GeneratedTokens; Mooncake: timestamp (ms), input_length, output_length; or the harness's own
TIME_COLUMNS = (("TIMESTAMP", 1.0), ("timestamp", 1e-3), ("arrival_s", 1.0))
INPUT_COLUMNS = ("ContextTokens", "input_length", "input_tokens")
OUTPUT_COLUMNS = ("GeneratedTokens", "output_length", "output_tokens")


class DatasetError(HarnessError):
    """A dataset or trace file that cannot be read; the message names the file and what is wrong."""


@dataclass
class Workload:
    requests: list[Request]  # every measured request, in send order (conversations: turn by turn, each in turn)
    times_s: list[float] | None = None  # a trace's own send times (s from the start); None: the arrival process
    conversations: list[list[Request]] | None = None  # sharegpt: each conversation's turns, in order
    info: dict[str, Any] = field(default_factory=dict)  # result.serving.dataset


def _fit(ids: list[int], max_tokens: int, max_len: int | None) -> tuple[list[int], int, bool]:
    """Prompt ids and output length that fit the model's context (latest tokens kept); whether it was cut."""
    if max_len is None or len(ids) + max_tokens <= max_len:
        return ids, max_tokens, False
    max_tokens = min(max_tokens, max_len // 2)
    return ids[len(ids) - (max_len - max_tokens) :], max_tokens, True


# ---- ShareGPT-style conversations ----------------------------------------------------------------------------
def read_conversations(path: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """(id, [(role, text)]) of each conversation in a ShareGPT-style JSON list; role is user or assistant."""
    try:
        items = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"serving.dataset_path={path}: not a readable JSON file: {exc}") from exc
    if not isinstance(items, list):
        raise DatasetError(f"serving.dataset_path={path}: expected a list of conversations, got {type(items).__name__}")
    out = []
    for i, item in enumerate(items):
        turns = item.get("conversations") if isinstance(item, dict) else None
        if not isinstance(turns, list):
            raise DatasetError(f"serving.dataset_path={path}: conversation {i} has no 'conversations' list")
        roles = []
        for t in turns:
            who = str(t.get("from", "")).lower()
            if who in USER or who in ASSISTANT:
                roles.append(("user" if who in USER else "assistant", str(t.get("value", ""))))
        out.append((str(item.get("id", i)), roles))
    return out


def render(messages: list[tuple[str, str]]) -> str:
    """A conversation as one completion prompt, ending where the assistant's answer starts."""
    names = {"user": "User", "assistant": "Assistant"}
    return "".join(f"{names[r]}: {text}\n\n" for r, text in messages) + "Assistant:"


def _budget(max_tokens: int, max_len: int | None, max_context: int | None) -> int | None:
    """The most prompt tokens a request may carry: serving.max_context_tokens, else the model's context less
    the request's output length (None: no bound known)."""
    if max_context is not None:
        return max_context
    return max_len - max_tokens if max_len is not None else None


def _trim(history: list, question: tuple[str, str], budget: int | None, tokenizer: Any) -> tuple[list, int, int]:
    """The latest history that fits `budget` with the question: whole (user, assistant) exchanges dropped
    oldest first, as a chat client trims its window; (kept history, exchanges dropped, tokens dropped)."""
    full = len(prompts.encode(render([*history, question]), tokenizer))
    kept = list(history)
    while budget is not None and kept and len(prompts.encode(render([*kept, question]), tokenizer)) > budget:
        kept = kept[2:]  # one exchange: the user's turn and the answer to it
    dropped = (len(history) - len(kept)) // 2
    tokens = full - len(prompts.encode(render([*kept, question]), tokenizer)) if dropped else 0
    return kept, dropped, tokens


def _conversation(cid: str, turns: list[tuple[str, str]], tokenizer: Any, max_len: int | None, output_len: int,
                  max_context: int | None = None):  # fmt: skip
    """The requests of one conversation (one per user turn) and how many were cut to fit (a question that
    alone is past the budget, cut from the left). A history past the budget loses its oldest exchanges."""
    out, history, cut = [], [], 0
    for k, (role, text) in enumerate(turns):
        if role != "user":
            continue
        answer = turns[k + 1][1] if k + 1 < len(turns) and turns[k + 1][0] == "assistant" else None
        max_tokens = max(1, len(prompts.encode(answer, tokenizer))) if answer else output_len
        kept, dropped, dropped_tokens = _trim(history, ("user", text), _budget(max_tokens, max_len, max_context),
                                              tokenizer)  # fmt: skip
        messages = [*kept, ("user", text)]
        ids = prompts.encode(render(messages), tokenizer)
        over = max_context is not None and len(ids) > max_context  # the question alone is past the bound
        ids = ids[len(ids) - max_context :] if over else ids
        ids, max_tokens, was_cut = _fit(ids, max_tokens, max_len)
        was_cut = was_cut or over
        cut += was_cut
        prompt = prompts.decode(ids, tokenizer) if was_cut else render(messages)
        chat = None if was_cut else tuple(messages)
        out.append(Request(0, ids, prompt, max_tokens, conversation=cid, turn=len(out), messages=chat,
                           history_turns_dropped=dropped, history_tokens_dropped=dropped_tokens))  # fmt: skip
        history = [*history, ("user", text), ("assistant", answer or "")]
    return out, cut


def sharegpt(path: str, n: int, tokenizer: Any, max_len: int | None, output_len: int,
             max_context: int | None = None) -> Workload:  # fmt: skip
    """Conversations in file order until `n` turns (the last one may be cut short)."""
    convs, total, cut = [], 0, 0
    for cid, turns in read_conversations(path):
        if total >= n:
            break
        reqs, c = _conversation(cid, turns, tokenizer, max_len, output_len, max_context)
        reqs = reqs[: n - total]
        if reqs:
            convs.append(reqs)
            total, cut = total + len(reqs), cut + c
    if not convs:
        raise DatasetError(f"serving.dataset_path={path}: no conversation with a user turn")
    flat = _numbered([r for conv in convs for r in conv])
    by_id = iter(flat)
    convs = [[next(by_id) for _ in conv] for conv in convs]
    info = {"conversations": len(convs), "turns_max": max(len(c) for c in convs), "prompts_cut": cut}
    info["max_context_tokens"] = max_context
    info["histories_trimmed"] = sum(r.history_turns_dropped > 0 for r in flat)
    info["history_turns_dropped"] = sum(r.history_turns_dropped for r in flat)
    info["history_tokens_dropped"] = sum(r.history_tokens_dropped for r in flat)
    return Workload(flat, conversations=convs, info=info)


# ---- traces ----------------------------------------------------------------------------------------------------
def _rows(path: str) -> list[dict[str, Any]]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"serving.dataset_path={path}: {exc}") from exc
    if p.suffix.lower() == ".csv":
        return list(csv.DictReader(text.splitlines()))
    try:
        if text.lstrip().startswith("["):
            return json.loads(text)
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError as exc:
        raise DatasetError(f"serving.dataset_path={path}: not JSON lines: {exc}") from exc


def _seconds(value: Any, scale: float) -> float:
    """A timestamp in seconds: a number (times `scale`) or an ISO date-time (Azure's, 7-digit fractions)."""
    try:
        return float(value) * scale
    except (TypeError, ValueError):
        text = str(value).strip().replace("T", " ").rstrip("Z")
        whole, _, frac = text.partition(".")
        return datetime.fromisoformat(f"{whole}.{(frac + '000000')[:6]}").timestamp()


def read_trace(path: str) -> list[tuple[float, int, int]]:
    """(arrival seconds from the first, input tokens, output tokens) of each row, in arrival order."""
    rows = _rows(path)
    if not rows:
        raise DatasetError(f"serving.dataset_path={path}: the trace has no rows")
    first = rows[0]
    time_col = next(((c, k) for c, k in TIME_COLUMNS if c in first), None)
    in_col = next((c for c in INPUT_COLUMNS if c in first), None)
    out_col = next((c for c in OUTPUT_COLUMNS if c in first), None)
    if time_col is None or in_col is None or out_col is None:
        want = f"{'/'.join(c for c, _ in TIME_COLUMNS)}, {'/'.join(INPUT_COLUMNS)}, {'/'.join(OUTPUT_COLUMNS)}"
        raise DatasetError(f"serving.dataset_path={path}: columns {sorted(first)}; a trace needs {want}")
    out = []
    for i, row in enumerate(rows):
        try:
            out.append((_seconds(row[time_col[0]], time_col[1]), int(float(row[in_col])), int(float(row[out_col]))))
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"serving.dataset_path={path}: row {i + 1}: {exc}") from exc
    out.sort(key=lambda r: r[0])
    t0 = out[0][0]
    return [(t - t0, max(1, n_in), max(1, n_out)) for t, n_in, n_out in out]


def trace(path: str, n: int, speed: float, seed: int, tokenizer: Any, max_len: int | None) -> Workload:
    """The first `n` rows of a trace at their own times / speed; prompts are corpus windows of their lengths."""
    rows = read_trace(path)[:n]
    fitted = [_fit([0] * n_in, n_out, max_len) for _, n_in, n_out in rows]
    windows = prompts.windows([len(ids) for ids, _, _ in fitted], seed + 7919, tokenizer)
    pairs = enumerate(zip(windows, fitted, strict=True))
    reqs = [Request(i, w, prompts.decode(w, tokenizer), m) for i, (w, (_, m, _)) in pairs]
    times = [t / speed for t, _, _ in rows]
    span = times[-1] if len(times) > 1 else 0.0
    info = {"rows": len(rows), "speed": speed, "span_s": span, "prompts_cut": sum(c for _, _, c in fitted)}
    return Workload(reqs, times_s=times, info=info)


# ---- shared prefixes -------------------------------------------------------------------------------------------
def shared_prefix(s: dict[str, Any], n: int, seed: int, tokenizer: Any) -> Workload:
    """`prefix_count` prefixes x `suffixes_per_prefix` suffixes (prompt = prefix + suffix), in a seeded order;
    the first `n` of them are sent."""
    groups, per, plen, slen = s["prefix_count"], s["suffixes_per_prefix"], s["prefix_len"], s["input_len"]
    heads = prompts.windows([plen] * groups, seed + 101, tokenizer)
    tails = prompts.windows([slen] * groups * per, seed + 202, tokenizer)
    order = np.random.default_rng(seed + 303).permutation(groups * per)[:n]
    outs = prompts._lengths(s["output_len"], s["len_range"], len(order), np.random.default_rng(seed + 404))
    reqs = []
    for i, j in enumerate(order):
        ids = heads[int(j) // per] + tails[int(j)]
        reqs.append(Request(i, ids, prompts.decode(ids, tokenizer), outs[i], prefix=int(j) // per))
    info = {"prefix_count": groups, "suffixes_per_prefix": per, "prefix_len": plen, "suffix_len": slen}
    return Workload(reqs, info=info)


def _numbered(reqs: list[Request]) -> list[Request]:
    from dataclasses import replace

    return [replace(r, index=i) for i, r in enumerate(reqs)]


def build(s: dict[str, Any], seed: int, tokenizer: Any = None, max_len: int | None = None) -> Workload:
    """The measured requests of serving.dataset (the warm-up requests are synthetic, apart)."""
    kind, n = s["dataset"], s["num_requests"]
    if kind == "sharegpt":
        w = sharegpt(s["dataset_path"], n, tokenizer, max_len, s["output_len"], s.get("max_context_tokens"))
    elif kind == "trace":
        w = trace(s["dataset_path"], n, s["trace_speed"], seed, tokenizer, max_len)
    elif kind == "shared_prefix":
        w = shared_prefix(s, n, seed, tokenizer)
    else:
        reqs = prompts.build(n + s["warmup_requests"], s["input_len"], s["output_len"], s["len_range"], seed, tokenizer)
        w = Workload(_numbered(reqs[s["warmup_requests"] :]))
    w.info = {"kind": kind, "path": s.get("dataset_path") if kind in ("sharegpt", "trace") else None, **w.info}
    w.info["requests"] = len(w.requests)
    return w


def warmup_requests(s: dict[str, Any], seed: int, tokenizer: Any = None) -> list[Request]:
    """The warm-up requests: the first of the synthetic set (as before datasets existed, so `random` runs
    send the same prompts as they did)."""
    n = s["warmup_requests"]
    return prompts.build(n + s["num_requests"], s["input_len"], s["output_len"], s["len_range"], seed, tokenizer)[:n]
