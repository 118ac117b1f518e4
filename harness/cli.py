"""Check the command line before anything runs: every configuration of a sweep is composed and
validated up front, so a bad value fails in one line with exit code 2, not halfway through a sweep."""

from __future__ import annotations

import difflib
import itertools
import re
import tempfile
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from harness import config as config_mod
from harness import validation
from harness.errors import ConfigError
from harness.search import settings as search_settings
from harness.search import space as search_space

GROUPS = ("model", "precision", "workload", "hardware", "dist")
_FLAGS_WITH_VALUE = {
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--experimental-rerun",
    "--package",
    "-p",
    "--cfg",
    "-c",
}
_SKIP_FLAGS = {
    "--help",
    "-h",
    "--hydra-help",
    "--version",
    "--info",
    "-i",
    "--shell-completion",
    "-sc",
    "--cfg",
    "-c",
    "--experimental-rerun",
}


def split_argv(argv: list[str]) -> tuple[bool, bool, list[str]]:
    """(multirun?, skip validation?, overrides) from a Hydra command line."""
    multirun, skip, overrides = False, False, []
    it = iter(argv)
    for arg in it:
        flag = arg.split("=", 1)[0]
        if flag in ("-m", "--multirun"):
            multirun = True
        elif flag in _SKIP_FLAGS:
            skip = True
            if flag in _FLAGS_WITH_VALUE and "=" not in arg:
                next(it, None)
        elif flag in _FLAGS_WITH_VALUE:
            if "=" not in arg:
                next(it, None)
        elif not arg.startswith("-"):
            overrides.append(arg)
    return multirun, skip, overrides


def _leaf_keys(node: Any, prefix: str = "") -> list[str]:
    keys = []
    for k in node:
        full = f"{prefix}{k}"
        keys.append(full)
        if not OmegaConf.is_missing(node, k) and OmegaConf.is_dict(node[k]):
            keys.extend(_leaf_keys(node[k], full + "."))
    return keys


# config nodes that take new keys with `+` (their entries are checked by their owners: harness.transforms.validate)
OPEN_NODES = ("transform.",)


def _check_keys(parsed: list, known: list[str]) -> None:
    for o in parsed:
        key = o.key_or_group
        if key.startswith("hydra") or o.is_delete():
            continue
        open_node = key.startswith(OPEN_NODES)  # a plugin transform's settings: +transform.<name>.<key>=...
        if (o.is_add() or o.is_force_add()) and key not in known and not open_node:
            near = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {near[0]}?" if near else ""
            raise ConfigError(o.input_line.split("=", 1)[0], o.input_line.split("=", 1)[1], f"no such key{hint}")
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
        if key in GROUPS:
            choices = _group_choices(key)
            for v in values:
                if v not in choices:
                    raise ConfigError(key, v, f"choose one of {', '.join(choices)}")
        elif key not in known and not open_node:
            near = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {near[0]}?" if near else f"valid keys: {', '.join(k for k in known if '.' not in k)}"
            raise ConfigError(key, ",".join(values), f"no such key; {hint}")


def _group_choices(group: str) -> list[str]:
    """A group's YAML presets; for `workload`, also the scenarios whose option is their schema (a plugin's)."""
    choices = config_mod.group_choices(group)
    if group == "workload":
        from harness import scenarios

        choices += [s.name for s in scenarios.all_specs() if s.schema is not None and s.name not in choices]
    return choices


def known_keys(default: Any) -> list[str]:
    """Every key an override may name: the default composition's, and each workload schema's fields."""
    from harness import scenarios

    known = _leaf_keys(default)
    for s in scenarios.all_specs():
        if s.schema is not None:
            known += [f"workload.{f}" for f in config_mod.schema_fields(s.schema) if f"workload.{f}" not in known]
    return known


def _workload_of(overrides: list[str], default: str) -> str:
    """The run's workload as its overrides choose it (workload.name=, else workload=), else the default."""
    chosen = {o.lstrip("+~").partition("=")[0]: o.partition("=")[2] for o in overrides}
    return chosen.get("workload.name") or chosen.get("workload") or default


def _not_in_schema(cause: OmegaConfBaseException | None, overrides: list[str], default: str) -> ConfigError | None:
    """An override of a field the chosen workload's schema lacks, named with the workloads that have it (in
    place of OmegaConf's "Key 'x' is not in struct")."""
    key = getattr(cause, "full_key", None) or ""
    if not key.startswith("workload.") or not isinstance(cause, (ConfigAttributeError, ConfigKeyError)):
        return None
    from harness import scenarios

    owners = scenarios.schema_owners(key.split(".")[1])
    if not owners:
        return None
    value = next((o.partition("=")[2] for o in overrides if o.lstrip("+~").partition("=")[0] == key), "?")
    workload = _workload_of(overrides, default)
    return ConfigError(key, value, f"is used only by workload={', '.join(owners)}; this run is workload={workload}")


def _omegaconf_cause(exc: BaseException) -> OmegaConfBaseException | None:
    while exc is not None:
        if isinstance(exc, OmegaConfBaseException):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _check_used(overrides: list[str], workload: str, quality_on: bool) -> None:
    """A key the run's workload never reads would be silently ignored: refuse it. Under `workload`, the fields
    of its schema (Spec.schema; composition already refuses the others, harness.cli._not_in_schema); elsewhere
    the keys the workloads declare as their own (Spec.only_keys); a plugin scenario that declares neither
    reads what it likes."""
    from harness import scenarios

    own = scenarios.spec(workload, strict=False)
    declared = [s for s in scenarios.all_specs() if s.only_keys is not None]
    for o in overrides:
        key, _, value = o.lstrip("+~").partition("=")
        if key.startswith("workload.") and own.schema is not None:  # its own schema's fields (Spec.schema)
            field = key.split(".")[1]
            owners = [] if field in config_mod.schema_fields(own.schema) else scenarios.schema_owners(field)
            if owners:
                raise ConfigError(
                    key, value, f"is used only by workload={', '.join(owners)}; this run is workload={workload}"
                )
            continue
        if own.only_keys is None:
            continue
        owners = [s.name for s in declared if key in s.only_keys]
        # data.* is the step workloads' input and every other run's held-out quality text: unused only with quality off
        if not owners and key.startswith("data.") and not own.reads_data and not quality_on:
            owners = [s.name for s in declared if s.reads_data]
        if owners and workload not in owners:
            by = ", ".join(owners)
            raise ConfigError(key, value, f"is used only by workload={by}; this run is workload={workload}")


def _check_auto_repeats_keys(overrides: list[str], repeats: Any) -> None:
    """repeats_target and the other stopping-rule keys are read only with repeats=auto: refuse them otherwise."""
    if repeats == "auto":
        return
    for o in overrides:
        key, _, value = o.lstrip("+~").partition("=")
        if key in validation.AUTO_REPEATS_KEYS:
            raise ConfigError(key, value, f"is used only with repeats=auto; this run has repeats={repeats}")


def _compose_and_validate(overrides: list[str], default_workload: str = "inference") -> str:
    """Compose and validate one run's configuration; returns its results_dir."""
    try:
        cfg = compose(config_name="config", overrides=overrides)
        validation.validate(OmegaConf.to_object(cfg))
        _check_used(overrides, cfg.workload.name, bool(cfg.quality.enabled))
        _check_auto_repeats_keys(overrides, cfg.repeats)
        return str(cfg.results_dir)
    except ConfigError:
        raise
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        cause = _omegaconf_cause(exc)
        refused = _not_in_schema(cause, overrides, default_workload)
        if refused is not None:
            raise refused from exc
        key = getattr(cause, "full_key", None) or "config"
        value = next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0] == key), "?")
        msg = (getattr(cause, "msg", None) or str(exc)).strip().splitlines()[0]
        raise ConfigError(key, value, msg) from exc


# integer keys where 2e8 is the natural way to write a value: given so, they are rewritten as integers
_E_NOTATION_INT_KEYS = ("memory_limit_bytes",)
_E_NUMBER = re.compile(r"\d+(\.\d*)?[eE]\+?\d+")


def normalise_argv(argv: list[str]) -> list[str]:
    """`memory_limit_bytes=2e8,4e9` → `memory_limit_bytes=200000000,4000000000` (Hydra wants an int)."""
    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key.lstrip("+") in _E_NOTATION_INT_KEYS:
            parts = value.split(",")
            if all(_E_NUMBER.fullmatch(p) or p.isdigit() for p in parts):
                nums = [float(p) for p in parts]
                if all(n.is_integer() for n in nums):
                    value = ",".join(str(int(n)) for n in nums)
        out.append(f"{key}{sep}{value}")
    return out


def prevalidate(argv: list[str]) -> int:
    """Validate every configuration the command line asks for; return how many runs it makes."""
    multirun, skip, overrides = split_argv(argv)
    if skip:
        return 0
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        raise ConfigError("override", " ".join(overrides), str(exc).strip().splitlines()[0]) from exc
    if not multirun:
        for o in parsed:
            if o.is_sweep_override():
                raise ConfigError(
                    o.key_or_group,
                    o.input_line.split("=", 1)[1],
                    "a list of values is a sweep: add -m (--multirun) to run each of them",
                )
    with initialize_config_dir(config_dir=str(config_mod.CONF_DIR), version_base="1.3"):
        default = compose(config_name="config")
        _check_keys(parsed, known_keys(default))
        n_trials = _search_trials(parsed, overrides) if multirun else None
        axes = [
            [f"{o.get_key_element()}={v}" for v in search_space.axis_values(o)]
            if o.is_sweep_override()
            else [o.input_line]
            for o in parsed
        ]
        combos = list(itertools.product(*axes))  # a search's space: every configuration it may run
        roots = {_compose_and_validate(list(combo), str(default.workload.name)) for combo in combos}
    for root in sorted(roots):
        ensure_writable(root)
    return len(combos) if n_trials is None else min(n_trials, len(combos))


def _search_trials(parsed: list, overrides: list[str]) -> int | None:
    """hydra/sweeper=pareto: its settings checked, its space's axes checked; the runs it launches at most."""
    if not any(o.key_or_group == "hydra/sweeper" and o.value() == "pareto" for o in parsed):
        return None
    hydra_lines = [line for line in overrides if line.lstrip("+~").startswith("hydra")]
    try:
        conf = compose(config_name="config", overrides=hydra_lines, return_hydra_config=True).hydra.sweeper
        settings = OmegaConf.to_container(conf)
        search_settings.check(settings)
    except ValueError as exc:
        key, _, rest = str(exc).partition("=")
        value, _, why = rest.partition(" is not valid: ")
        raise ConfigError(key, value, why or str(exc)) from exc
    except (HydraException, OmegaConfBaseException) as exc:
        raise ConfigError("hydra.sweeper", " ".join(hydra_lines), str(exc).strip().splitlines()[0]) from exc
    task_lines = [line for line in overrides if line not in hydra_lines]
    search_space.from_overrides(task_lines)  # refuses a workload axis, an interval
    return int(settings["n_trials"])


def ensure_writable(results_dir: str) -> None:
    """Create results_dir and write a file in it, before anything runs: a folder that cannot be made (under
    /proc, on a read-only mount, where permissions only show on a write, as for root) is bad input, not a
    full disk found by the first run."""
    try:
        Path(results_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=results_dir):
            pass
    except OSError as exc:
        raise ConfigError("results_dir", results_dir, f"cannot be created or written ({exc.strerror or exc})") from exc
