rule evaluate:
    """A trained run under its dataset's protocol -> metrics.json and the per-view heatmap."""
    input:
        run=produced(gw.RUN, "train"),
        data=produced(gw.PACKED, "preprocess"),
    output:
        metrics=gw.METRICS,
        plot=gw.VIEW_PLOT,
        summary=gw.SUMMARY,
    log:
        "logs/evaluate/{dataset}/{backbone}-{recipe}-s{seed}.log",
    benchmark:
        "logs/benchmarks/evaluate/{dataset}/{backbone}-{recipe}-s{seed}.tsv"
    conda:
        "../envs/gaitflow.yaml"
    threads: MODEL_THREADS
    resources:
        gpu=GPU,
        cpus_per_task=SLURM_CPUS,
        mem_mb=SLURM_MEM_MB,
    params:
        file=PARAMS_FILE,
        settings=settings("evaluate"),
        identity=identity("evaluate"),
    shell:
        "OMP_NUM_THREADS={threads} gaitflow evaluate --params {params.file} --dataset {wildcards.dataset} "
        "--backbone {wildcards.backbone} --recipe {wildcards.recipe} --seed {wildcards.seed} --run {input.run} --data {input.data} "
        "--out {output.metrics} --wait --quiet > {log} 2>&1"
