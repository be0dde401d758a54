rule synth:
    """Draw a synthetic silhouette dataset (one zip archive, in the real layout)."""
    output:
        archive=gw.SYNTH_RAW,
        partition=gw.SYNTH_PARTITION,
    log:
        "logs/synth/{dataset}.log",
    benchmark:
        "logs/benchmarks/synth/{dataset}.tsv"
    conda:
        "../envs/gaitflow.yaml"
    threads: 32  # Snakemake gives it at most --cores
    params:
        file=PARAMS_FILE,
        settings=settings("synth"),
        identity=identity("synth"),
    shell:
        "gaitflow synth --params {params.file} --dataset {wildcards.dataset} --out {output.archive} "
        "--partition-out {output.partition} --archive zip "
        "--set synth.workers={threads} --quiet > {log} 2>&1"
