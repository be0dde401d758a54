"""Validated parameters: params.yaml plus command-line overrides.

params.yaml is the single home of every parameter. It is checked against a
JSON Schema (2020-12, the dialect Snakemake validates with) so an unknown key,
a wrong type or an out-of-range value stops the run with one line naming the
key path, the value and what is expected. Overrides (``--set a.b=c``) are
applied before validation, so they pass the same checks.
"""

from __future__ import annotations

import copy
import reprlib
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from gaitflow.errors import GaitflowError

SCHEMA_RESOURCE = "schemas/params.schema.yaml"
# The release layouts `gaitflow synth` draws a synthetic twin in.
SYNTHETIC_LAYOUTS = ("casia-b", "ou-mvlp", "gait3d", "grew", "sustech1k", "ccpg")
# Bounds on what a params file may expand to: YAML aliases repeat a node without repeating its
# text, so a short file can stand for billions of values (and validating it would never end).
MAX_VALUES = 200_000
MAX_DEPTH = 64


@lru_cache(maxsize=1)
def schema() -> dict:
    """The params schema shipped with the package."""
    text = resources.files("gaitflow").joinpath(SCHEMA_RESOURCE).read_text()
    return yaml.safe_load(text)


def schema_for(params: dict) -> dict:
    """The schema, with the loss components registered beyond the built-in ones it describes
    (their parameter schemas come from the components themselves, see gaitflow.losses.registry)."""
    from gaitflow.losses import registry

    declared = schema()["$defs"]["recipe"]["properties"]
    extra = [name for name in registry.names() if name not in declared]
    if not extra:
        return schema()
    recipes = params.get("recipes") if isinstance(params.get("recipes"), dict) else {}
    used = {comp for spec in recipes.values() if isinstance(spec, dict) for comp in spec}
    merged = copy.deepcopy(schema())
    for name in extra:  # a component's module is imported only when a recipe uses it
        merged["$defs"]["recipe"]["properties"][name] = registry.params_schema(name) if name in used else {}
    return merged


def load_params(path: str | Path = "params.yaml", overrides: Iterable[str] = (), sweeps: bool = True) -> dict:
    """Read, override and validate a params file; raise GaitflowError on any problem. With
    ``sweeps`` (the default), each sweep's values are added as recipes (gaitflow.sweeps); without,
    the params are as written, to be written to a params file again."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise GaitflowError(
            f"{path}: file not found; expected a params file (see params.yaml in the repository)"
        ) from None
    except OSError as exc:
        raise GaitflowError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise GaitflowError(f"{path}: not UTF-8 text (byte {exc.start}); expected a YAML params file") from None
    try:
        params = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow: no line, a position
            code = f": #x{exc.character:04x}" if isinstance(exc.character, int) else ""
            where, problem = f": character {exc.position + 1}", f"{exc.reason}{code}"
        else:
            where, problem = (f": line {mark.line + 1}" if mark else ""), getattr(exc, "problem", None) or exc
        problem = " ".join(str(problem).split())  # one line: some messages span several
        raise GaitflowError(f"{path}{where}: not valid YAML ({problem})") from None
    except RecursionError:
        raise GaitflowError(f"{path}: nested too deeply; expected at most {MAX_DEPTH} levels") from None
    if not isinstance(params, dict):
        raise GaitflowError(f"{path}: expected a mapping of sections at the top level, got {type(params).__name__}")
    check_size(params, str(path))
    params = apply_overrides(params, overrides)
    check_size(params, str(path))
    validate(params, source=str(path))
    from gaitflow.sweeps import expand

    return expand(params, source=str(path)) if sweeps else params  # each sweep's values become recipes of the grid


def apply_overrides(params: dict, overrides: Iterable[str]) -> dict:
    """Return a copy of params with each ``a.b.c=value`` applied (value parsed as YAML)."""
    params = copy.deepcopy(params)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise GaitflowError(f"--set {item!r}: expected KEY.PATH=VALUE, for example preprocess.img_size=32")
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        except RecursionError:
            raise GaitflowError(
                f"--set {_short(item)}: nested too deeply; expected at most {MAX_DEPTH} levels"
            ) from None
        node = params
        parts = key.strip().split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise GaitflowError(f"--set {item!r}: {where} is a {type(child).__name__}, not a section")
            node = child
        node[parts[-1]] = value
    return params


def check_size(params: Any, source: str) -> None:
    """Refuse params nested deeper than MAX_DEPTH or standing for more than MAX_VALUES values."""
    stack, seen = [(params, 1)], 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise GaitflowError(
                f"{source}: more than {MAX_VALUES} values (YAML aliases repeated?); expected a params file"
            )
        if depth > MAX_DEPTH:
            raise GaitflowError(f"{source}: nested too deeply; expected at most {MAX_DEPTH} levels")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


def validate(params: dict, source: str = "params.yaml") -> None:
    """Check params against the schema and the cross-references the schema cannot express."""
    from jsonschema import Draft202012Validator  # imported here: planning a DAG must stay light

    validator = Draft202012Validator(schema_for(params))
    errors = sorted(validator.iter_errors(params), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        raise GaitflowError(f"{source}: {describe(errors[0])}")
    _check_references(params, source)
    _check_grid(params, source)


def _name(key: Any) -> str:
    """A key as the message shows it: as written, or quoted when it holds a line break or other control."""
    return key if isinstance(key, str) and key.isprintable() else repr(key)


def _key_path(parts: Iterable[Any]) -> str:
    return ".".join(_name(p) for p in parts) or "(top level)"


def describe(error) -> str:
    """One line for a jsonschema error: key path, offending value, what is expected."""
    path = _key_path(error.absolute_path)
    kind = error.validator
    if kind == "additionalProperties":
        allowed = sorted((error.schema.get("properties") or {}).keys())
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        prefix = f"{path}." if error.absolute_path else ""
        keys = ", ".join(f"{prefix}{_name(k)}" for k in extra) or path
        expected = f"expected one of: {', '.join(allowed)}" if allowed else "no further keys are allowed here"
        return f"{keys}: unknown key; {expected}"
    if kind == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        prefix = f"{path}." if error.absolute_path else ""
        return f"{prefix}{missing[0]}: missing; this key is required"
    value = _short(error.instance)
    expectations = {
        "type": lambda v: f"expected {' or '.join(v) if isinstance(v, list) else v}",
        "enum": lambda v: f"expected one of: {', '.join(map(str, v))}",
        "minimum": lambda v: f"expected a value >= {v}",
        "maximum": lambda v: f"expected a value <= {v}",
        "exclusiveMinimum": lambda v: f"expected a value > {v}",
        "exclusiveMaximum": lambda v: f"expected a value < {v}",
        "minItems": lambda v: f"expected at least {v} item(s)",
        "minProperties": lambda v: f"expected at least {v} entr{'y' if v == 1 else 'ies'}",
        "uniqueItems": lambda v: "expected no repeated items",
        "minLength": lambda v: "expected a non-empty string",
        "pattern": lambda v: f"expected a name matching {v}",
    }
    if kind == "propertyNames":
        return f"{path}: key {value} is not allowed; expected lowercase letters, digits, '-' and '_'"
    explain = expectations.get(kind)
    expected = explain(error.validator_value) if explain else error.message
    return f"{path} = {value}: {expected}"


_REPR = reprlib.Repr()  # bounded: a value may be large (or a YAML alias repeated many times)
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict = 3, 8, 8
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 60


def _short(value: Any, limit: int = 60) -> str:
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_references(params: dict, source: str) -> None:
    for name, protocol in params["protocols"].items():
        if protocol["kind"] != "cross-view" or protocol.get("gallery"):
            continue
        for probe, setting in protocol["probes"].items():
            if not isinstance(setting, dict):
                raise GaitflowError(
                    f"{source}: protocols.{name}.probes.{probe}: no gallery; expected protocols.{name}.gallery "
                    "or {probe: [...], gallery: [...]} for this setting"
                )
    datasets = params["datasets"]
    if params["dataset"] not in datasets:
        raise GaitflowError(
            f"{source}: dataset = {params['dataset']!r}: expected one of the datasets: {', '.join(sorted(datasets))}"
        )
    for name, spec in datasets.items():
        protocol = params["protocols"].get(spec["protocol"])
        if protocol is None:
            raise GaitflowError(
                f"{source}: datasets.{name}.protocol = {spec['protocol']!r}: no protocols.{spec['protocol']} "
                f"section defines it; expected one of: {', '.join(sorted(params['protocols']))}"
            )
        if (protocol["split"] == "file" or protocol.get("probe_set")) and "partition" not in spec:
            raise GaitflowError(
                f"{source}: datasets.{name}: protocol {spec['protocol']!r} takes its split from the release's "
                f"partition file; expected datasets.{name}.partition (a JSON with TRAIN_SET, TEST_SET"
                f"{', PROBE_SET' if protocol.get('probe_set') else ''})"
            )
        synth = spec.get("synth")
        if synth and spec["layout"] == "ou-mvlp" and set(synth["conditions"]) != {"nm"}:
            raise GaitflowError(
                f"{source}: datasets.{name}.synth.conditions: the ou-mvlp layout has no covariates; expected only nm"
            )
        if synth and spec["layout"] == "ou-mvlp" and synth["conditions"]["nm"] > 2:
            raise GaitflowError(
                f"{source}: datasets.{name}.synth.conditions.nm = {synth['conditions']['nm']}: "
                "the ou-mvlp layout has sequences 00 and 01; expected a value <= 2"
            )
        if synth and spec["layout"] not in SYNTHETIC_LAYOUTS:
            raise GaitflowError(
                f"{source}: datasets.{name}.layout = {spec['layout']!r}: "
                f"synthetic data is written in one of the layouts {', '.join(SYNTHETIC_LAYOUTS)}"
            )


def _check_grid(params: dict, source: str) -> None:
    grid = params["grid"]
    for key, known in (
        ("datasets", params["datasets"]),
        ("backbones", params["backbones"]),
        ("recipes", params["recipes"]),
    ):
        for name in grid[key]:
            if name not in known:
                raise GaitflowError(
                    f"{source}: grid.{key}: {name!r} is not in {key}; expected some of: {', '.join(sorted(known))}"
                )
    for key, known in (("backbones", params["backbones"]), ("recipes", params["recipes"])):
        for name in grid["extra"][key]:
            if name not in known:
                raise GaitflowError(
                    f"{source}: grid.extra.{key}: {name!r} is not in {key}; "
                    f"expected some of: {', '.join(sorted(known))}"
                )
    twice = [
        f"{b}-{r}"
        for b in grid["extra"]["backbones"]
        for r in grid["extra"]["recipes"]
        if b in grid["backbones"] and r in grid["recipes"]
    ]
    if twice:
        raise GaitflowError(
            f"{source}: grid.extra: {twice[0]} is a run of the grid's product already; "
            "expected runs beyond it (drop the recipe from grid.extra.recipes or the backbone from its backbones)"
        )
    for name, sweep in (params.get("sweeps") or {}).items():
        for b in sweep["backbones"]:
            if b not in params["backbones"]:
                raise GaitflowError(
                    f"{source}: sweeps.{name}.backbones: {b!r} is not in backbones; "
                    f"expected some of: {', '.join(sorted(params['backbones']))}"
                )
    from gaitflow.workflow import BASELINE_METHOD, RAW_DIR, SYNTH_PARTITION, SYNTH_RAW

    trained = {f"{b}-{r}" for b in params["backbones"] for r in params["recipes"]} | {BASELINE_METHOD}
    for name in params["imported"]:
        if name in trained:
            raise GaitflowError(
                f"{source}: imported.{name}: the name of a trained run or the baseline; "
                "expected a name of its own (e.g. gaitgl-zoo)"
            )

    for d in grid["datasets"]:
        if not params["datasets"][d]["raw"].startswith(f"{RAW_DIR}/"):
            raise GaitflowError(
                f"{source}: datasets.{d}.raw = {params['datasets'][d]['raw']!r}: the workflow reads "
                f"raw data from {RAW_DIR}/ (dvc.yaml depends on that folder); place or link it there"
            )
    synthetic = [d for d in grid["datasets"] if "synth" in params["datasets"][d]]
    if sorted(grid["synthetic"]) != sorted(synthetic):
        raise GaitflowError(
            f"{source}: grid.synthetic = {grid['synthetic']}: expected the grid's datasets that "
            f"have a synth section, {synthetic}"
        )
    for d in synthetic:
        partition = params["datasets"][d].get("partition")
        if partition is not None and partition != SYNTH_PARTITION.format(dataset=d):
            raise GaitflowError(
                f"{source}: datasets.{d}.partition = {partition!r}: the workflow draws a synthetic dataset's "
                f"partition file to {SYNTH_PARTITION.format(dataset=d)!r}; expected that path"
            )
        expected = SYNTH_RAW.format(dataset=d)
        if params["datasets"][d]["raw"] != expected:
            raise GaitflowError(
                f"{source}: datasets.{d}.raw = {params['datasets'][d]['raw']!r}: the workflow draws "
                f"synthetic datasets to {expected!r}; expected that path"
            )


def dataset_spec(params: dict, name: str | None = None) -> tuple[str, dict]:
    """The name and entry of a dataset (the default one when name is None)."""
    name = name or params["dataset"]
    try:
        return name, params["datasets"][name]
    except KeyError:
        raise GaitflowError(
            f"--dataset {name!r}: not in params.yaml datasets; expected one of: {', '.join(sorted(params['datasets']))}"
        ) from None


def workers(n: int) -> int:
    """Resolve a `workers` parameter: 0 means one per available core."""
    import os

    if n > 0:
        return n
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)
