"""The gate's typed settings: schema here, values in conf/gate/<name>.yaml, overrides from the command line."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harness.config import CONF_DIR
from harness.errors import ConfigError
from harness.gate.stats import PROCESSES, RESAMPLING

GATE_CONF_DIR = CONF_DIR / "gate"
KINDS = ("timed", "counted")
BETTER = ("lower", "higher")


@dataclass
class MetricSpec:
    """How one metric is judged. threshold: fraction of the baseline; floor: absolute allowance (metric's unit)."""

    kind: str = "timed"
    better: str = "lower"
    threshold: float = 0.05
    floor: float = 0.0
    enabled: bool = True


@dataclass
class EnvironmentPolicy:
    strict: list[str] = field(default_factory=list)  # a difference makes the pair incomparable
    noted: list[str] = field(default_factory=list)  # a difference is reported only


@dataclass
class ConfigOverride:
    match: dict[str, str] = field(default_factory=dict)  # key fields, e.g. {model: 7b}
    metrics: dict[str, Any] = field(default_factory=dict)  # metric -> partial MetricSpec


@dataclass
class GateSettings:
    confidence: float = 0.95
    # the statistic of the pooled per-repeat figures: 0.5 = the median; a lower quantile (higher for
    # higher-is-better metrics) is less moved by co-tenant load, which only ever slows a run down;
    # 0 = the minimum (the maximum where higher is better)
    quantile: float = 0.5
    # what the bootstrap resamples: "processes" (whole runs, then their repeats: the two-stage bootstrap) or
    # "repeats" (each run keeps its place, only its repeats are resampled); see harness/gate/stats.py
    resample: str = PROCESSES
    resamples: int = 2000
    seed: int = 0
    min_repeats: int = 3
    environment: EnvironmentPolicy = field(default_factory=EnvironmentPolicy)
    metrics: dict[str, MetricSpec] = field(default_factory=dict)
    per_config: list[ConfigOverride] = field(default_factory=list)

    def spec_for(self, metric: str, key_fields: Mapping[str, Any]) -> MetricSpec:
        """The metric's settings for one run, after the per_config entries that match it."""
        spec = self.metrics[metric]
        for i, entry in enumerate(self.per_config):
            if metric in entry.metrics and all(str(key_fields.get(k)) == str(v) for k, v in entry.match.items()):
                spec = _merge_spec(spec, entry.metrics[metric], f"per_config.{i}.metrics.{metric}")
        return spec


def _merge_spec(spec: MetricSpec, partial: Any, where: str) -> MetricSpec:
    names = [f.name for f in fields(MetricSpec)]
    partial = OmegaConf.to_container(partial) if OmegaConf.is_config(partial) else partial
    if not isinstance(partial, Mapping):
        raise ConfigError(where, partial, f"must be a mapping of {', '.join(names)}")
    for k in partial:
        if k not in names:
            raise ConfigError(f"{where}.{k}", partial[k], _unknown(k, names))
    merged = replace(spec, **partial)
    _check_spec(merged, where)
    return merged


def _unknown(key: str, known: Sequence[str]) -> str:
    near = difflib.get_close_matches(key, known, n=1)
    return f"no such key; did you mean {near[0]}?" if near else f"no such key; valid keys: {', '.join(known)}"


def _check_spec(spec: MetricSpec, where: str) -> None:
    if spec.kind not in KINDS:
        raise ConfigError(f"{where}.kind", spec.kind, f"choose one of {', '.join(KINDS)}")
    if spec.better not in BETTER:
        raise ConfigError(f"{where}.better", spec.better, f"choose one of {', '.join(BETTER)}")
    # a timed threshold of 1 or more would make "throughput fell by 100 %" the limit: meaningless
    top = 1 if spec.kind == "timed" else float("inf")
    if not 0 <= spec.threshold < top:
        raise ConfigError(f"{where}.threshold", spec.threshold, "must be >= 0 and < 1 (a fraction: 0.05 = 5 %)")
    if spec.floor < 0:
        raise ConfigError(f"{where}.floor", spec.floor, "must be >= 0")


def validate(s: GateSettings) -> None:
    """Raise ConfigError naming the first bad key."""
    if not 0 < s.confidence < 1:
        raise ConfigError("confidence", s.confidence, "must be > 0 and < 1 (e.g. 0.95)")
    if not 0 <= s.quantile < 1:
        raise ConfigError("quantile", s.quantile, "must be >= 0 and < 1 (0.5 = the median, 0 = the minimum)")
    if s.resample not in RESAMPLING:
        raise ConfigError("resample", s.resample, f"choose one of {', '.join(RESAMPLING)}")
    if s.resamples < 100:
        raise ConfigError("resamples", s.resamples, "must be >= 100")
    if s.min_repeats < 2:
        raise ConfigError("min_repeats", s.min_repeats, "must be >= 2 (one repeat has no spread to judge)")
    for name, spec in s.metrics.items():
        _check_spec(spec, f"metrics.{name}")
    for i, entry in enumerate(s.per_config):
        for metric, partial in entry.metrics.items():
            if metric not in s.metrics:
                raise ConfigError(f"per_config.{i}.metrics.{metric}", partial, _unknown(metric, list(s.metrics)))
            _merge_spec(s.metrics[metric], partial, f"per_config.{i}.metrics.{metric}")


def _config_path(name: str) -> Path:
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError("--config", name, "no such file")
        return path
    choices = sorted(p.stem for p in GATE_CONF_DIR.glob("*.yaml"))
    if name not in choices:
        raise ConfigError("--config", name, f"choose one of {', '.join(choices)} or give a .yaml file")
    return GATE_CONF_DIR / f"{name}.yaml"


def _no_interpolation(node: Any, where: str, value: str) -> None:
    """Gate settings are plain values: an interpolation (${...}) would pull in the environment or fail late."""
    if isinstance(node, Mapping):
        for v in node.values():
            _no_interpolation(v, where, value)
    elif isinstance(node, list):
        for v in node:
            _no_interpolation(v, where, value)
    elif isinstance(node, str) and "${" in node:
        raise ConfigError(where, value, f"holds an interpolation ({node}); gate settings take plain values only")


def _load_layer(path: Path, name: str) -> Any:
    try:
        layer = OmegaConf.load(path)
    except (OSError, yaml.YAMLError, OmegaConfBaseException) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError("--config", name, f"not readable YAML ({first})") from exc
    if not OmegaConf.is_dict(layer):
        raise ConfigError("--config", name, "must be a YAML mapping of gate settings (see conf/gate/default.yaml)")
    _no_interpolation(OmegaConf.to_container(layer, resolve=False), "--config", name)
    return layer


def _check_metric_names(overrides: Sequence[str], known: Sequence[str]) -> None:
    """An override of a metric the gate does not know would add a new, never-matched metric: refuse it."""
    for o in overrides:
        key, value = o.split("=", 1)
        parts = key.split(".")
        if parts[0] == "metrics" and len(parts) >= 2 and parts[1] not in known:
            raise ConfigError(key, value, _unknown(parts[1], list(known)).replace("no such key", "no such metric"))


def load(config: str = "default", overrides: Sequence[str] = ()) -> GateSettings:
    """conf/gate/default.yaml, then `config` (a name in conf/gate/ or a YAML file), then `key=value` overrides."""
    schema = OmegaConf.structured(GateSettings)
    layers = [OmegaConf.load(GATE_CONF_DIR / "default.yaml")]
    if config != "default":
        layers.append(_load_layer(_config_path(config), config))
    for o in overrides:
        if "=" not in o:
            raise ConfigError("override", o, "expected key=value, e.g. metrics.decode_tok_per_s.threshold=0.1")
        _no_interpolation(o.split("=", 1)[1], o.split("=", 1)[0], o.split("=", 1)[1])
    try:
        cfg = OmegaConf.merge(schema, *layers)
    except OmegaConfBaseException as exc:
        raise ConfigError(exc.full_key or "--config", config, str(exc.msg).splitlines()[0]) from exc
    _check_metric_names(overrides, list(cfg.metrics))
    for o in overrides:
        key, value = o.split("=", 1)
        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([o]))
        except OmegaConfBaseException as exc:
            known = [f.name for f in fields(GateSettings)] + [f"metrics.{m}" for m in cfg.metrics]
            parent = key.rsplit(".", 1)[0]
            hint = _unknown(key, known) if "not in" in str(exc.msg) else str(exc.msg).splitlines()[0]
            if parent.startswith("metrics.") and parent.count(".") == 1 and "not in" in str(exc.msg):
                hint = _unknown(key.rsplit(".", 1)[1], [f.name for f in fields(MetricSpec)])
            raise ConfigError(key, value, hint) from exc
    settings = OmegaConf.to_object(cfg)
    validate(settings)
    return settings
