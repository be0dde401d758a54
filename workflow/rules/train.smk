rule train:
    """One backbone with one loss recipe on one dataset."""
    input:
        produced(gw.PACKED, "preprocess"),
    output:
        directory(gw.RUN),
    params:
        file=PARAMS,
        settings=settings("train"),
        identity=identity("train"),
    threads: MODEL_THREADS
    resources:
        gpu=GPU,
    conda:
        "../envs/gaitflow.yaml"
    log:
        "logs/train/{dataset}/{backbone}-{recipe}.log",
    benchmark:
        "logs/benchmarks/train/{dataset}/{backbone}-{recipe}.tsv"
    shell:
        "OMP_NUM_THREADS={threads} gaitflow train --params {params.file} --dataset {wildcards.dataset} "
        "--backbone {wildcards.backbone} --recipe {wildcards.recipe} --data {input} --out {output} "
        "--restart --quiet > {log} 2>&1"
