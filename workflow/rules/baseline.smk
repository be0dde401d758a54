rule baseline:
    """The GEI + nearest-neighbour baseline: the first row of every table."""
    input:
        produced(gw.PACKED, "preprocess"),
    output:
        gw.BASELINE,
    log:
        "logs/baseline/{dataset}.log",
    benchmark:
        "logs/benchmarks/baseline/{dataset}.tsv"
    conda:
        "../envs/gaitflow.yaml"
    params:
        file=PARAMS_FILE,
        settings=settings("baseline"),
        identity=identity("baseline"),
    shell:
        "gaitflow baseline --params {params.file} --dataset {wildcards.dataset} --data {input} --out {output} "
        "--quiet > {log} 2>&1"
