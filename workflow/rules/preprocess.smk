rule preprocess:
    """Raw silhouettes -> the packed dataset (a few large files, memory-mapped)."""
    input:
        raw_input,
    output:
        directory(gw.PACKED),
    log:
        "logs/preprocess/{dataset}.log",
    benchmark:
        "logs/benchmarks/preprocess/{dataset}.tsv"
    conda:
        "../envs/gaitflow.yaml"
    threads: 32  # Snakemake gives it at most --cores
    params:
        file=PARAMS_FILE,
        settings=settings("preprocess"),
        identity=identity("preprocess"),
    shell:
        "gaitflow preprocess --params {params.file} --dataset {wildcards.dataset} --out {output} "
        "--set preprocess.workers={threads} --wait --quiet > {log} 2>&1"
