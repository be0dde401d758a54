"""The two front ends (Snakefile, dvc.yaml) and what they share (gaitflow.workflow)."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO, WORKFLOW_TINY, make_workflow_project, run

from gaitflow import workflow as gw
from gaitflow.config import load_params

PARAMS = load_params(REPO / "params.yaml")


def test_the_grid_expands_to_every_dataset_backbone_recipe_seed():
    sets = ["grid.backbones=[gaitset, gln]", "grid.recipes=[triplet, circle]", "grid.seeds=[0, 3]"]
    params = load_params(REPO / "params.yaml", sets)
    assert gw.runs(params) == [
        {"dataset": "casiab-syn", "backbone": b, "recipe": r, "seed": s}
        for b in ("gaitset", "gln")
        for r in ("triplet", "circle")
        for s in ("0", "3")
    ]
    outs = gw.outputs(params)
    assert {"models/casiab-syn/gln-circle-s0", "models/casiab-syn/gln-circle-s3"} <= outs
    assert "results/tables/casiab-syn" in outs and "data/raw/casiab-syn.zip" in outs
    assert len([o for o in outs if o.startswith("models/")]) == 8


def test_step_params_are_whole_sections_with_the_run_filled_in():
    got = gw.step_params(PARAMS, "train", dataset="casiab-syn", backbone="gaitgl", recipe="triplet+drpl")
    assert got == {
        "seed": 0,
        "train": PARAMS["train"],
        "backbones.gaitgl": PARAMS["backbones"]["gaitgl"],
        "recipes.triplet+drpl": PARAMS["recipes"]["triplet+drpl"],
    }


def test_code_digests_follow_imports_not_the_whole_package(tmp_path, monkeypatch):
    tables = {p.relative_to(gw.PACKAGE).as_posix() for p in gw.module_closure(gw.STEP_MODULES["tables"])}
    package = {p.relative_to(gw.PACKAGE).as_posix() for p in (gw.PACKAGE / "tables").glob("*.py")}
    assert "tables/published.py" in package  # the papers' printed figures, beside ours
    assert len(package) > 1 and package <= tables and "train.py" not in tables
    # no other step runs a module of the tables package
    for step in set(gw.STEP_MODULES) - {"tables"}:
        assert not {str(p.relative_to(gw.PACKAGE)) for p in gw.code_files(step)} & package, step
    gaitset = {
        str(p.relative_to(gw.PACKAGE))
        for p in gw.module_closure(("gaitflow.train", "gaitflow.models.gaitset"), ("gaitflow.models",))
    }
    assert "models/gaitset.py" in gaitset and "models/blocks.py" in gaitset and "models/gaitgl.py" not in gaitset
    # the registry imports backbones by computed name: without a named backbone, all of them count
    registry = {str(p.relative_to(gw.PACKAGE)) for p in gw.module_closure(("gaitflow.train",))}
    assert {"models/gaitgl.py", "models/gaitset.py"} <= registry

    # an edit to one backbone changes its runs' digest and nothing else
    copy = tmp_path / "gaitflow"
    shutil.copytree(gw.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(gw, "PACKAGE", copy)
    gw.code_digest.cache_clear()
    gw._imports.cache_clear()
    before = {k: gw.code_digest(*k) for k in [("train", "gaitset"), ("train", "gaitpart"), ("tables", None)]}
    with open(copy / "models" / "gaitset.py", "a") as fh:
        fh.write("\n# an edit\n")
    gw.code_digest.cache_clear()
    gw._imports.cache_clear()
    after = {k: gw.code_digest(*k) for k in before}
    gw.code_digest.cache_clear()
    gw._imports.cache_clear()
    assert after[("train", "gaitset")] != before[("train", "gaitset")]
    assert after[("train", "gaitpart")] == before[("train", "gaitpart")]
    assert after[("tables", None)] == before[("tables", None)]


def test_an_edit_to_a_loss_reruns_the_runs_that_use_it_and_no_evaluation(tmp_path, monkeypatch):
    copy = tmp_path / "gaitflow"
    shutil.copytree(gw.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(gw, "PACKAGE", copy)
    jobs = [("train", "gaitset", ("triplet",)), ("train", "gaitset", ("gsam", "triplet")), ("evaluate", "gaitset", ())]

    def digests():
        gw.code_digest.cache_clear()
        gw._imports.cache_clear()
        return {job: gw.code_digest(*job) for job in jobs}

    before = digests()
    with open(copy / "losses" / "gsam.py", "a") as fh:
        fh.write("\n# an edit\n")
    after = digests()
    gw.code_digest.cache_clear()
    gw._imports.cache_clear()
    assert after[jobs[1]] != before[jobs[1]]  # triplet+gsam retrains (and so is evaluated again)
    assert after[jobs[0]] == before[jobs[0]] and after[jobs[2]] == before[jobs[2]]  # nothing else
    assert gw.component_modules(PARAMS["recipes"]["triplet+drpl+gsam"]) == (
        "gaitflow.losses.base",
        "gaitflow.losses.drpl",
        "gaitflow.losses.gsam",
    )


def test_identity_changes_downstream_of_a_change_only():
    run_a = dict(dataset="casiab-syn", backbone="gaitpart", recipe="triplet")
    run_b = dict(dataset="casiab-syn", backbone="gaitpart", recipe="circle+waveloss")
    changed = load_params(REPO / "params.yaml", ["recipes.circle+waveloss.circle.margin=0.3"])
    for step in ("train", "evaluate"):
        assert gw.identity(PARAMS, step, **run_a) == gw.identity(changed, step, **run_a)
        assert gw.identity(PARAMS, step, **run_b) != gw.identity(changed, step, **run_b)
    assert gw.identity(PARAMS, "preprocess", dataset="casiab-syn") == gw.identity(
        changed, "preprocess", dataset="casiab-syn"
    )
    noisier = load_params(REPO / "params.yaml", ["datasets.casiab-syn.synth.noise=0.05"])
    for step, wc in (
        ("preprocess", {"dataset": "casiab-syn"}),
        ("evaluate", run_a),
        ("tables", {"dataset": "casiab-syn"}),
    ):
        assert gw.identity(PARAMS, step, **wc) != gw.identity(noisier, step, **wc)


def test_the_workflow_schema_is_the_params_schema():
    linked = REPO / "workflow" / "schemas" / "params.schema.yaml"
    schema = yaml.safe_load(linked.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert linked.resolve() == (REPO / "gaitflow" / "schemas" / "params.schema.yaml").resolve()


@pytest.mark.parametrize(
    "override, message",
    [
        ("grid.backbones=[gaitset, resnet]", "grid.backbones: 'resnet' is not in backbones"),
        ("grid.synthetic=[]", "grid.synthetic = []: expected the grid's datasets that have a synth section"),
        ("datasets.casiab-syn.raw=/elsewhere/x.zip", "datasets.casiab-syn.raw = '/elsewhere/x.zip'"),
    ],
)
def test_a_bad_grid_is_one_line_naming_the_key(override, message):
    from gaitflow.errors import GaitflowError

    with pytest.raises(GaitflowError, match=re.escape(message)):
        load_params(REPO / "params.yaml", [override])


# --- the two front ends ---------------------------------------------------------


def _normalise(cmd: str) -> str:
    """Drop what only Snakemake's execution adds: threads, worker counts and the log redirection."""
    cmd = re.sub(r"^OMP_NUM_THREADS=\d+ ", "", cmd.strip())
    cmd = re.sub(r" --set (synth|preprocess)\.workers=\d+", "", cmd)
    return re.sub(r" > logs/\S+ 2>&1$", "", cmd)


def _snakemake_jobs(root: Path, *args: str) -> dict[str, str]:
    """Output path -> shell command of every job of the DAG (from a forced dry run)."""
    out = run(["snakemake", "-n", "-p", "--forceall", "--cores", "1", *args], root).stdout
    jobs = {}
    for block in out.split("\nrule ")[1:]:
        if block.startswith("all:"):
            continue
        outputs = re.search(r"^    output: (.+)$", block, re.M).group(1).split(", ")
        cmd = re.search(r"^Shell command: (.+)$", block, re.M).group(1)
        jobs.update({o: _normalise(cmd) for o in outputs})
    return jobs


def _dvc_stages(root: Path) -> list:
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return [
            (
                s.name,
                s.cmd,
                [str(o.def_path) for o in s.outs],
                sorted(k for dep in s.deps if hasattr(dep, "params") for k in dep.params),
            )
            for s in repo.index.stages
        ]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_workflow_project(tmp_path_factory.mktemp("fronts") / "project")


def test_snakefile_and_dvc_yaml_have_the_same_outputs_and_commands(project):
    jobs = _snakemake_jobs(project)
    stages = _dvc_stages(project)
    dvc_outputs = {out: cmd for _, cmd, outs, _ in stages for out in outs}
    assert set(jobs) == set(dvc_outputs)
    assert set(jobs) == gw.outputs(yaml.safe_load((project / "params.yaml").read_text()))
    for out, cmd in dvc_outputs.items():
        assert jobs[out] == cmd, out
    names = {name for name, *_ in stages}
    assert "train@casiab-syn-gaitset-circle+waveloss-0" in names and "tables@casiab-syn" in names


def test_dvc_stages_read_the_sections_snakemake_tracks(project):
    for name, _, _, params in _dvc_stages(project):
        step, _, item = name.partition("@")
        wildcards = {"dataset": "casiab-syn"}
        if step in ("train", "evaluate"):
            backbone, recipe = item.removeprefix("casiab-syn-").rsplit("-", 1)[0].split("-", 1)
            wildcards.update(backbone=backbone, recipe=recipe)
        assert sorted(params) == sorted(k.format(**wildcards) for k in gw.STEP_PARAMS[step]), name


def test_lint_and_a_quick_dry_run(project):
    proc = run("snakemake --lint", project, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    start = time.perf_counter()
    out = run("snakemake -n --cores all", project).stdout
    print(f"dry run of the tiny grid: {time.perf_counter() - start:.2f} s")  # figures, never asserted
    assert "This was a dry-run" in out and "train" in out


def test_the_slurm_profile_submits_training_to_gpus(project):
    out = run("snakemake -n --profile workflow/profiles/slurm", project).stdout
    train = out[out.index("rule train:") :]
    resources = next(line for line in train.splitlines() if "resources:" in line)
    assert (
        "slurm_partition=gpu" in resources and "gpu=1" in resources and "runtime=6" in resources
    )  # 4 iterations x 0.21 s x 3, + 5 min


def test_a_configfile_replaces_params_yaml_and_command_line_config_is_refused(project, tmp_path):
    other = yaml.safe_load((project / "params.yaml").read_text())
    other["grid"]["backbones"] = ["gln"]
    (project / "other.yaml").write_text(yaml.safe_dump(other))
    jobs = _snakemake_jobs(project, "--configfile", "other.yaml")
    assert {o for o in jobs if o.startswith("models/")} == {
        "models/casiab-syn/gln-triplet-s0",
        "models/casiab-syn/gln-circle+waveloss-s0",
    }
    assert all("--params other.yaml" in cmd for out, cmd in jobs.items() if out.startswith("models/"))
    proc = run("snakemake -n --cores 1 --config seed=3", project, check=False)
    assert proc.returncode != 0 and "edit params.yaml or pass --configfile" in proc.stdout + proc.stderr


def test_a_bad_params_file_stops_planning_with_one_line(project):
    bad = yaml.safe_load((project / "params.yaml").read_text())
    bad["train"]["lr"] = -1
    (project / "bad.yaml").write_text(yaml.safe_dump(bad))
    proc = run("snakemake -n --cores 1 --configfile bad.yaml", project, check=False)
    assert proc.returncode != 0
    assert "bad.yaml: train.lr = -1" in proc.stdout + proc.stderr


def test_the_papers_params_plan_the_full_grid_on_the_real_casia_b(project):
    papers = load_params(REPO / "workflow" / "params" / "papers.yaml")
    assert papers["preprocess"]["img_size"] == 64 and papers["train"]["frames"] == 30
    assert (papers["train"]["p"], papers["train"]["k"], papers["train"]["width"]) == (8, 16, 1.0)
    archive = project / "data" / "raw" / "CASIA-B.tar.gz"
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.write_bytes(b"placeholder")  # planning needs the archive to exist, not to be read
    try:
        out = run("snakemake -n --cores all --configfile workflow/params/papers.yaml", project).stdout
    finally:
        archive.unlink()
    counts = {
        line.split()[0]: int(line.split()[1])
        for line in out.splitlines()
        if len(line.split()) == 2 and line.split()[1].isdigit()
    }
    product = len(papers["grid"]["backbones"]) * len(papers["grid"]["recipes"])
    ablations = len(papers["grid"]["extra"]["recipes"]) + len(papers["sweeps"]["gsam-tau"]["values"])  # on GaitSet
    runs = (product + ablations) * len(papers["grid"]["seeds"])
    assert papers["grid"]["seeds"] == [0, 1, 2]  # three seeds of every run
    assert (product, ablations) == (96, 23) and counts["train"] == runs and counts["evaluate"] == runs
    assert "synth" not in counts and counts["preprocess"] == 1 and counts["tables"] == 1


def test_the_gsam_centred_profile_is_the_default_plus_one_recipe(project):
    """workflow/params/gsam-centred.yaml: the default grid and GSAM on centred features, nothing else."""
    default = load_params(REPO / "params.yaml")
    profile = load_params(REPO / "workflow" / "params" / "gsam-centred.yaml")
    added = [r for r in profile["grid"]["recipes"] if r not in default["grid"]["recipes"]]
    assert added == ["triplet+gsam-centred"] and set(default["grid"]["recipes"]) < set(profile["grid"]["recipes"])
    runs = len(profile["grid"]["backbones"]) * len(profile["grid"]["recipes"])
    profile["grid"]["recipes"] = default["grid"]["recipes"]
    assert profile == default
    out = run("snakemake -n --cores all --configfile workflow/params/gsam-centred.yaml", project).stdout
    assert runs == 24 and f"train {runs}" in " ".join(out.split())


def test_imported_models_have_the_same_jobs_and_tracked_sections_in_both_front_ends(tmp_path):
    zoo = {"gaitgl-zoo": {"format": "opengait", "checkpoint": "data/zoo/gaitgl.pt", "backbone": "gaitgl"}}
    root = make_workflow_project(tmp_path / "project", WORKFLOW_TINY + [f"imported={json.dumps(zoo)}"])
    (root / "data" / "zoo").mkdir(parents=True)
    shutil.copy(REPO / "tests" / "fixtures" / "opengait" / "gaitgl-casiab.pt", root / "data" / "zoo" / "gaitgl.pt")
    jobs = _snakemake_jobs(root)
    stages = _dvc_stages(root)
    dvc_outputs = {out: cmd for _, cmd, outs, _ in stages for out in outs}
    assert set(jobs) == set(dvc_outputs) == gw.outputs(yaml.safe_load((root / "params.yaml").read_text()))
    assert {"models/imported/gaitgl-zoo", "results/casiab-syn/gaitgl-zoo/metrics.json"} <= set(jobs)
    for out, cmd in dvc_outputs.items():
        assert jobs[out] == cmd, out
    tracked = {name: params for name, _, _, params in stages}
    assert tracked["import@gaitgl-zoo"] == ["imported.gaitgl-zoo"]
    assert tracked["evaluate-imported@casiab-syn-gaitgl-zoo"] == sorted(gw.STEP_PARAMS["evaluate"])
    assert tracked["tables@casiab-syn"] == sorted(gw.STEP_PARAMS["tables"])


def test_each_dvc_stage_depends_on_the_files_its_step_runs():
    """dvc.yaml lists, per stage, the library files Snakemake's code digest hashes for its step."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    step_of = {"import": "import", "evaluate-imported": "evaluate"}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        code = [d for d in body["deps"] if d.startswith("gaitflow")]
        step = step_of.get(name, name.split("-", 1)[0])  # train-extra, train-<sweep>: the train step
        expected = gw.dvc_code_deps(step, per_backbone=name != "evaluate-imported")
        assert code == expected, f"dvc.yaml stage {name}: its code deps should be:\n" + "\n".join(
            f"- {d}" for d in expected
        )
    # selective: the tables' own modules are dependencies of the tables stage only
    for module in sorted((REPO / "gaitflow" / "tables").glob("*.py")):
        dep = module.relative_to(REPO).as_posix()
        owners = [name for name, stage in stages.items() if dep in stage.get("do", stage)["deps"]]
        assert owners == ["tables"], dep
    assert "gaitflow/models/${item.backbone}.py" in stages["train"]["deps"]


# --- sweeps and the grid's extra runs, in both front ends -----------------------------

SWEPT = WORKFLOW_TINY + [
    "grid.recipes=[triplet]",
    "grid.extra.backbones=[gaitset]",
    "grid.extra.recipes=[triplet+gsam-pu]",
    "sweeps.gsam-tau.values=[0.05, 1.0]",
]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    return make_workflow_project(tmp_path_factory.mktemp("swept") / "project", SWEPT)


def test_a_sweep_expands_into_named_recipes_of_its_base():
    params = load_params(REPO / "params.yaml", SWEPT)
    base = params["recipes"]["triplet+gsam"]
    for value in (0.05, 1.0):
        name = f"triplet+gsam~tau={value}"
        assert params["recipes"][name] == {**base, "gsam": {**base["gsam"], "tau": value}}
    recipes = {(r["backbone"], r["recipe"]) for r in gw.runs(params)}
    assert recipes == {
        ("gaitpart", "triplet"),
        ("gaitset", "triplet"),
        ("gaitset", "triplet+gsam-pu"),  # grid.extra: on its backbones only
        ("gaitset", "triplet+gsam~tau=0.05"),  # the sweep: on its backbones only
        ("gaitset", "triplet+gsam~tau=1.0"),
    }
    from gaitflow.sweeps import points

    assert points(params, "gsam-tau") == [
        (0.05, "triplet+gsam~tau=0.05"),
        (0.1, "triplet+gsam"),  # the base is the point at its own value: one run, shared
        (1.0, "triplet+gsam~tau=1.0"),
    ]
    assert load_params(REPO / "params.yaml", SWEPT, sweeps=False)["recipes"] == PARAMS["recipes"]


@pytest.mark.parametrize(
    "override, message",
    [
        ("sweeps.gsam-tau.values=[0.1]", "sweeps.gsam-tau.values: 0.1 is recipes.triplet+gsam's own gsam.tau"),
        ("sweeps.gsam-tau.values=[0]", "sweeps.gsam-tau: triplet+gsam~tau=0: gsam.tau = 0: expected a value > 0"),
        ("sweeps.gsam-tau.key=gsam.temperature", "sweeps.gsam-tau.key = 'gsam.temperature': gsam has no parameter"),
        ("sweeps.gsam-tau.key=drpl.eps", "sweeps.gsam-tau.key = 'drpl.eps': expected <component>.<parameter> of a"),
        ("sweeps.gsam-tau.recipe=gsam", "sweeps.gsam-tau.recipe = 'gsam': not in recipes"),
        ("sweeps.gsam-tau.backbones=[resnet]", "sweeps.gsam-tau.backbones: 'resnet' is not in backbones"),
        ("grid.extra.recipes=[triplet]", "grid.extra: gaitset-triplet is a run of the grid's product already"),
        ("grid.extra.recipes=[tripple]", "grid.extra.recipes: 'tripple' is not in recipes"),
    ],
)
def test_a_bad_sweep_or_extra_is_one_line_naming_the_key(override, message):
    from gaitflow.errors import GaitflowError

    with pytest.raises(GaitflowError, match=re.escape(message)):
        load_params(REPO / "params.yaml", ["sweeps.gsam-tau.values=[0.5]", override])


def test_sweeps_and_extra_runs_have_the_same_jobs_and_sections_in_both_front_ends(swept):
    jobs = _snakemake_jobs(swept)
    stages = _dvc_stages(swept)
    dvc_outputs = {out: cmd for _, cmd, outs, _ in stages for out in outs}
    assert set(jobs) == set(dvc_outputs) == gw.outputs(load_params(swept / "params.yaml"))
    for out, cmd in dvc_outputs.items():
        assert jobs[out] == cmd, out
    assert "models/casiab-syn/gaitset-triplet+gsam~tau=0.05-s0" in jobs
    assert "models/casiab-syn/gaitset-triplet+gsam-pu-s0" in jobs
    assert "models/casiab-syn/gaitpart-triplet+gsam-pu-s0" not in jobs
    names = {name: params for name, _, _, params in stages}
    # a sweep's stages read its base recipe and the sweep's key: editing another value reruns nothing
    assert names["train-gsam-tau@casiab-syn-gaitset-0.05-0"] == sorted(
        ["seed", "train", "backbones.gaitset", "recipes.triplet+gsam", "sweeps.gsam-tau.recipe", "sweeps.gsam-tau.key"]
    )
    assert names["train-extra@casiab-syn-gaitset-triplet+gsam-pu-0"] == sorted(
        ["seed", "train", "backbones.gaitset", "recipes.triplet+gsam-pu"]
    )


def test_every_sweep_of_the_params_files_has_its_stage_pair_in_dvc_yaml():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for path in [REPO / "params.yaml", *sorted((REPO / "workflow" / "params").glob("*.yaml"))]:
        for name in load_params(path)["sweeps"]:
            assert f"train-{name}" in stages and f"evaluate-{name}" in stages, (path, name)
    swept = {n.split("-", 1)[1] for n in stages if n.startswith("train-") and n != "train-extra"}
    assert swept == set(PARAMS["sweeps"])


def test_the_ablations_profile_is_the_default_plus_gaitsets_ablations(project):
    """workflow/params/ablations.yaml: the default grid, GaitMPL's ablations on GaitSet (grid.extra)
    and Fig. 6's tau sweep, nothing else; after the default it trains only the new runs."""
    default = load_params(REPO / "params.yaml", sweeps=False)
    profile = load_params(REPO / "workflow" / "params" / "ablations.yaml", sweeps=False)
    assert profile["grid"]["extra"]["backbones"] == ["gaitset"] and len(profile["grid"]["extra"]["recipes"]) == 19
    assert profile["sweeps"]["gsam-tau"]["values"] == [0.01, 0.03, 0.3, 1.0]
    runs = len(gw.runs(load_params(REPO / "workflow" / "params" / "ablations.yaml")))
    profile["grid"]["extra"] = default["grid"]["extra"]
    profile["sweeps"] = default["sweeps"]
    assert profile == default
    out = " ".join(run("snakemake -n --cores all --configfile workflow/params/ablations.yaml", project).stdout.split())
    assert runs - len(gw.runs(PARAMS)) == 23 and f"train {runs}" in out and f"evaluate {runs}" in out


def test_the_oumvlp_gait3d_profile_trains_the_papers_backbones_on_both_twins(project):
    default = load_params(REPO / "params.yaml", sweeps=False)
    profile = load_params(REPO / "workflow" / "params" / "oumvlp-gait3d.yaml", sweeps=False)
    runs = gw.runs(profile)
    assert len(runs) == 24 and {r["dataset"] for r in runs} == {"oumvlp-syn", "gait3d-syn"}
    assert ("deepgaitv2", "triplet+waveloss") in {(r["backbone"], r["recipe"]) for r in runs}
    profile["grid"], profile["dataset"] = default["grid"], default["dataset"]
    assert profile == default
