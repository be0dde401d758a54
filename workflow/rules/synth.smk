rule synth:
    """Draw a synthetic silhouette dataset (one zip archive, in the real layout)."""
    output:
        gw.SYNTH_RAW,
    params:
        file=PARAMS,
        settings=settings("synth"),
        identity=identity("synth"),
    threads: 32  # Snakemake gives it at most --cores
    conda:
        "../envs/gaitflow.yaml"
    log:
        "logs/synth/{dataset}.log",
    benchmark:
        "logs/benchmarks/synth/{dataset}.tsv"
    shell:
        "gaitflow synth --params {params.file} --dataset {wildcards.dataset} --out {output} --archive zip "
        "--set synth.workers={threads} --quiet > {log} 2>&1"
