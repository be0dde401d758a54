"""Sweeps: one parameter of a recipe over a list of values, each value a recipe of its own.

A sweep in params.yaml names a base recipe, the dotted path of one component parameter in it
and the values to try::

    sweeps:
      gsam-tau: {recipe: triplet+gsam, key: gsam.tau, values: [0.01, 0.05, 0.5, 1.0], backbones: [gaitset]}

Each value becomes the recipe ``<recipe>~<parameter>=<value>`` (``triplet+gsam~tau=0.05``): the
base with that one parameter changed, trained on the sweep's backbones with every dataset and
seed of the grid. The value the base already has is the base recipe itself, so it is
left out of ``values`` (a sweep's table and plot take the base as that point). Expanded when
params are loaded (:func:`expand`), so every step, the Snakefile and the tables see the sweep's
recipes as ordinary recipes; dvc.yaml expands each sweep with a stage pair of its own
(docs/configuration.md#sweeps).
"""

from __future__ import annotations

import copy

from gaitflow.errors import GaitflowError

SEPARATOR = "~"  # between the base recipe's name and the swept parameter=value


def parameter(sweep: dict) -> str:
    """The swept parameter's name: the last part of its key (``gsam.tau`` -> ``tau``)."""
    return sweep["key"].rsplit(".", 1)[-1]


def recipe_name(sweep: dict, value) -> str:
    """The recipe a sweep's value becomes; the value as YAML and DVC print it (0.05, 1.0, true)."""
    shown = str(value).lower() if isinstance(value, bool) else str(value)
    return f"{sweep['recipe']}{SEPARATOR}{parameter(sweep)}={shown}"


def _check(params: dict, name: str, sweep: dict, source: str) -> None:
    from gaitflow.losses import registry

    where = f"{source}: sweeps.{name}"
    base = params["recipes"].get(sweep["recipe"])
    if base is None:
        raise GaitflowError(
            f"{where}.recipe = {sweep['recipe']!r}: not in recipes; "
            f"expected one of: {', '.join(sorted(params['recipes']))}"
        )
    component, _, key = sweep["key"].partition(".")
    if component not in base or not key or "." in key:
        raise GaitflowError(
            f"{where}.key = {sweep['key']!r}: expected <component>.<parameter> of a component of "
            f"recipes.{sweep['recipe']} ({', '.join(base)})"
        )
    known = registry.resolve({component: base[component] or {}})[component]
    if key not in known:
        raise GaitflowError(
            f"{where}.key = {sweep['key']!r}: {component} has no parameter {key!r}; expected one of: {', '.join(known)}"
        )
    if len({recipe_name(sweep, v) for v in sweep["values"]}) != len(sweep["values"]):
        raise GaitflowError(f"{where}.values = {sweep['values']}: a value is listed twice")
    own = known[key]
    if any(v == own and isinstance(v, bool) == isinstance(own, bool) for v in sweep["values"]):
        raise GaitflowError(
            f"{where}.values: {own!r} is recipes.{sweep['recipe']}'s own {sweep['key']}: the base recipe is "
            "that point already (its runs are shared); leave it out"
        )


def _check_recipe(spec: dict, where: str) -> None:
    """The expanded recipe against the schema every recipe of params.yaml passes (a value's type and range)."""
    from jsonschema import Draft202012Validator

    from gaitflow.config import describe, schema_for

    full = schema_for({"recipes": {"x": spec}})
    errors = list(Draft202012Validator({"$ref": "#/$defs/recipe", "$defs": full["$defs"]}).iter_errors(spec))
    if errors:
        raise GaitflowError(f"{where}: {describe(errors[0])}")


def expand(params: dict, source: str = "params.yaml") -> dict:
    """A copy of validated params with every sweep's recipes added to ``recipes`` (the grid's runs
    of them: :func:`gaitflow.workflow.runs`). Raises :class:`GaitflowError` naming the sweep on a bad one."""
    sweeps = params.get("sweeps") or {}
    if not sweeps:
        return params
    params = copy.deepcopy(params)
    for name, sweep in sweeps.items():
        if not sweep["values"]:  # nothing to expand (and planning stays light: no component is loaded)
            continue
        _check(params, name, sweep, source)
        component, _, key = sweep["key"].partition(".")
        for value in sweep["values"]:
            new = recipe_name(sweep, value)
            if new in params["recipes"]:
                raise GaitflowError(f"{source}: sweeps.{name}: its recipe {new!r} is in recipes already")
            spec = copy.deepcopy(params["recipes"][sweep["recipe"]])
            spec[component] = {**(spec[component] or {}), key: value}
            _check_recipe(spec, f"{source}: sweeps.{name}: {new}")
            params["recipes"][new] = spec
    return params


def points(params: dict, name: str) -> list[tuple[object, str]]:
    """(value, recipe) of every point of sweep ``name``, the base at its own value, sorted by value."""
    from gaitflow.losses import registry

    sweep = params["sweeps"][name]
    component, _, key = sweep["key"].partition(".")
    own = registry.resolve({component: params["recipes"][sweep["recipe"]][component] or {}})[component][key]
    found = [(own, sweep["recipe"])] + [(v, recipe_name(sweep, v)) for v in sweep["values"]]
    return sorted(found, key=lambda p: p[0])
