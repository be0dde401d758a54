rule train:
    """One backbone with one loss recipe on one dataset."""
    input:
        produced(gw.PACKED, "preprocess"),
    output:
        run=directory(gw.RUN),
        curve=gw.CURVE,
    log:
        "logs/train/{dataset}/{backbone}-{recipe}-s{seed}.log",
    benchmark:
        "logs/benchmarks/train/{dataset}/{backbone}-{recipe}-s{seed}.tsv"
    conda:
        "../envs/gaitflow.yaml"
    threads: MODEL_THREADS
    resources:
        gpu=GPU,
        cpus_per_task=SLURM_CPUS,
        mem_mb=SLURM_MEM_MB,
        runtime=TRAIN_MINUTES,
    params:
        file=PARAMS_FILE,
        settings=settings("train"),
        identity=identity("train"),
        work=lambda wc: gw.WORK.format(**wc),
    shell:
        "OMP_NUM_THREADS={threads} gaitflow train --params {params.file} --dataset {wildcards.dataset} "
        "--backbone {wildcards.backbone} --recipe {wildcards.recipe} --seed {wildcards.seed} --data {input} --out {output.run} "
        "--curve {output.curve} --work {params.work} --wait --quiet > {log} 2>&1"
