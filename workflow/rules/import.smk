rule import_checkpoint:
    """A model trained elsewhere (params `imported`) -> a run folder that evaluate reads like a trained one."""
    input:
        lambda wc: ancient(config["imported"][wc.name]["checkpoint"]),
    output:
        directory(gw.IMPORTED_RUN),
    log:
        "logs/import/{name}.log",
    conda:
        "../envs/gaitflow.yaml"
    params:
        file=PARAMS_FILE,
        settings=settings("import"),
        identity=identity("import"),
    shell:
        "gaitflow import-checkpoint --params {params.file} --name {wildcards.name} --out {output} --quiet > {log} 2>&1"


rule evaluate_imported:
    """An imported model under a dataset's protocol -> metrics.json (a row of the dataset's tables)."""
    input:
        run=produced(gw.IMPORTED_RUN, "import"),
        data=produced(gw.PACKED, "preprocess"),
    output:
        metrics=gw.IMPORTED_METRICS,
        plot=gw.IMPORTED_VIEW_PLOT,
        summary=gw.IMPORTED_SUMMARY,
    log:
        "logs/evaluate/{dataset}/{name}.log",
    benchmark:
        "logs/benchmarks/evaluate/{dataset}/{name}.tsv"
    conda:
        "../envs/gaitflow.yaml"
    threads: MODEL_THREADS
    resources:
        gpu=GPU,
    params:
        file=PARAMS_FILE,
        settings=settings("evaluate"),
        identity=identity("evaluate"),
    shell:
        "OMP_NUM_THREADS={threads} gaitflow evaluate --params {params.file} --dataset {wildcards.dataset} "
        "--imported {wildcards.name} --run {input.run} --data {input.data} --out {output.metrics} --wait --quiet > {log} 2>&1"
