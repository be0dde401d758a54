# gaitflow: `snakemake --cores all` rebuilds every result from raw silhouettes.
#
#   synth (synthetic datasets) -> preprocess -> train (every dataset x backbone x
#   recipe x seed of params.yaml's grid) -> evaluate -> tables, with the GEI baseline
#   and the models of params `imported` (import -> evaluate) as further rows
#
# The rules are thin: each runs one `gaitflow` subcommand (workflow/rules/).
# dvc.yaml runs the same commands on the same paths; tests hold the two equal.


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/synth.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/baseline.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/import.smk"
include: "workflow/rules/tables.smk"


# Declared here, after the includes, so the top-level file keeps its default target.
rule all:
    default_target: True
    input:
        expand(gw.TABLES, dataset=GRID["datasets"]),


onstart:
    # One process creates the MLflow store before parallel jobs race to migrate it.
    if config["tracking"]["enabled"]:
        shell("gaitflow init-tracking --params {PARAMS} --quiet")


onsuccess:
    # Write dvc.lock for what was built, so `dvc status` agrees without a rebuild; then remove the
    # work folders of the runs now safely in place (kept until here: a job killed while finishing
    # leaves its rerun what it needs to adopt the run instead of training it again).
    shell("gaitflow record --params {PARAMS} --quiet")
    shell("gaitflow prune-work --quiet")
