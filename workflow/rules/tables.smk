rule tables:
    """The papers' tables (Markdown, CSV, LaTeX) and plots of a dataset, from its results files."""
    input:
        baseline=produced(gw.BASELINE, "baseline"),
        runs=produced(gw.METRICS, "evaluate", each="run"),
        curves=produced(gw.CURVE, "train", each="run"),  # the training step times (GaitMPL table VII)
        imported=produced(gw.IMPORTED_METRICS, "evaluate", each="imported"),
    output:
        report(
            directory(gw.TABLES),
            patterns=["{name}.png", "{name}.csv"],
            caption="../report/tables.rst",
            category="Tables",
        ),
    log:
        "logs/tables/{dataset}.log",
    benchmark:
        "logs/benchmarks/tables/{dataset}.tsv"
    conda:
        "../envs/gaitflow.yaml"
    params:
        file=PARAMS_FILE,
        settings=settings("tables"),
        identity=identity("tables"),
    shell:
        "gaitflow tables --params {params.file} --dataset {wildcards.dataset} --results results/{wildcards.dataset} "
        "--out {output} --quiet > {log} 2>&1"
