"""``gaitflow``: one subcommand per step of the pipeline.

    synth       draw a synthetic dataset in a real layout (archive by default)
    preprocess  raw silhouettes (folder or archive) -> packed dataset
    train       one backbone x one loss recipe -> checkpoint (resumable)
    evaluate    a trained run under the dataset's protocol -> metrics.json
    init-tracking  create the MLflow store once before parallel runs
    baseline    GEI + nearest neighbour under the dataset's protocol
    tables      the papers' tables and plots from a dataset's results files
    import-checkpoint  a reference framework's (OpenGait's) checkpoint -> a run folder
    identify    rank a gallery's identities for probe sequences with a trained run
    export      a trained run's model as ONNX or TorchScript (silhouettes -> embeddings)
    record      write dvc.lock for every stage that is built (after a Snakemake run)
    prune-work  remove the work folders of finished runs whose output is in place

Every subcommand reads params.yaml (``--params``) with ``--set key=value``
overrides, and prints one line and exits non-zero on bad input.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import sys
from pathlib import Path

from gaitflow import workflow as layout
from gaitflow.errors import GaitflowError
from gaitflow.locks import exclusive


def _at(pattern: str) -> str:
    """A layout pattern as help text: models/{dataset}/... -> models/<dataset>/..."""
    return pattern.replace("{", "<").replace("}", ">")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a parameter, e.g. preprocess.img_size=32 (repeatable)",
    )
    p.add_argument("--dataset", help="dataset name from params.yaml (default: params `dataset`)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _wait(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--wait",
        action="store_true",
        help="when another process is writing the same output, wait for it to end instead of refusing "
        "(the workflow's jobs: a rerun then adopts what that process finished)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gaitflow", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("synth", help="draw a synthetic silhouette dataset")
    _common(p)
    p.add_argument("--out", help="output archive or folder (default: the dataset's `raw` path)")
    p.add_argument("--archive", choices=["zip", "tar", "folder"], help="output kind (default: params synth.archive)")
    p.add_argument(
        "--partition-out",
        help=f"the twin's partition file (default: the dataset's `partition`, else {_at(layout.SYNTH_PARTITION)})",
    )
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("preprocess", help="raw silhouettes -> packed dataset")
    _common(p)
    p.add_argument("--input", help="folder or archive (default: the dataset's `raw` path)")
    p.add_argument("--out", help=f"output folder (default: {_at(layout.PACKED)})")
    p.add_argument("--layout", help="file layout (default: the dataset's `layout`)")
    _wait(p)
    p.set_defaults(func=cmd_preprocess)

    p = sub.add_parser("train", help="train one backbone with one loss recipe")
    _common(p)
    p.add_argument("--backbone", required=True, help="a backbone from params.yaml backbones")
    p.add_argument("--recipe", required=True, help="a loss recipe from params.yaml recipes")
    p.add_argument("--seed", type=int, help="the training seed (default: params `seed`)")
    p.add_argument("--data", help=f"packed dataset folder (default: {_at(layout.PACKED)})")
    p.add_argument("--out", help=f"run folder (default: {_at(layout.RUN)})")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="force a device (default: params train.device)")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and train from scratch")
    p.add_argument(
        "--work",
        metavar="DIR",
        help=f"keep checkpoints in DIR while training and move the finished run into --out (the workflow: "
        f"{_at(layout.WORK)}); a rerun resumes from DIR when settings, code and data are unchanged",
    )
    p.add_argument("--register", metavar="NAME", help="register the trained model in the MLflow model registry")
    p.add_argument("--curve", help="also write the training log as a TSV table (what `dvc plots` draws)")
    p.add_argument(
        "--init-from",
        metavar="RUN",
        help="fine-tune: start from another run's weights (an imported one too); the classifier is kept "
        "only if its classes fit",
    )
    _wait(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("prune-work", help="remove the work folders of finished runs whose output is in place")
    p.add_argument("--root", default=layout.WORK_ROOT, help=f"the work folders' root (default: {layout.WORK_ROOT})")
    p.add_argument("--quiet", action="store_true", help="print nothing")
    p.set_defaults(func=cmd_prune_work)

    p = sub.add_parser("evaluate", help="score a trained run under its dataset's protocol")
    _common(p)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--backbone", help="the run's backbone (with --recipe)")
    which.add_argument("--imported", metavar="NAME", help="an imported model of params `imported` instead")
    p.add_argument("--recipe", help="the run's loss recipe (with --backbone)")
    p.add_argument("--seed", type=int, help="the run's training seed (default: params `seed`)")
    p.add_argument("--run", help=f"run folder (default: {_at(layout.RUN)} or {_at(layout.IMPORTED_RUN)})")
    p.add_argument("--eval-dataset", help="evaluate on another dataset's test set and protocol (cross-dataset)")
    p.add_argument("--data", help="packed dataset folder of the evaluation dataset")
    p.add_argument("--out", help=f"metrics file (default: {_at(layout.METRICS)}, of the evaluation dataset)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    _wait(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("init-tracking", help="create the MLflow store and the grid's experiments before parallel runs")
    _common(p)
    p.set_defaults(func=cmd_init_tracking)

    p = sub.add_parser("baseline", help="GEI + nearest neighbour under the dataset's protocol")
    _common(p)
    p.add_argument("--data", help=f"packed dataset folder (default: {_at(layout.PACKED)})")
    p.add_argument("--out", help=f"metrics file (default: {_at(layout.BASELINE)})")
    p.set_defaults(func=cmd_baseline)

    p = sub.add_parser("tables", help="the papers' tables (Markdown, CSV, LaTeX) and plots from the results files")
    _common(p)
    p.add_argument("--results", help=f"results folder (default: {_at(layout.RESULTS)})")
    p.add_argument("--out", help=f"output folder, replaced whole (default: {_at(layout.TABLES)})")
    p.set_defaults(func=cmd_tables)

    p = sub.add_parser("import-checkpoint", help="a reference framework's checkpoint -> a gaitflow run folder")
    _common(p)
    p.add_argument("--name", help="an entry of params `imported` (its checkpoint, backbone, ... are the defaults)")
    p.add_argument("--format", choices=["opengait"], help="the framework that wrote it (default: opengait)")
    p.add_argument("--checkpoint", help="the checkpoint file (e.g. OpenGait's GaitGL-80000.pt)")
    p.add_argument("--backbone", help="gaitset, gaitpart, gaitgl, gln or deepgaitv2")
    p.add_argument(
        "--expect",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="what the checkpoint must be, e.g. variant=ou-mvlp, mode=p3d, phase=2 (repeatable; "
        "the sizes are read from its tensors)",
    )
    p.add_argument("--frame-shape", nargs=2, type=int, metavar=("H", "W"), help="frame size (default: 64 44)")
    p.add_argument("--label", help="its name in the tables (default: the entry's label or name)")
    p.add_argument("--out", help=f"run folder to write (default: {_at(layout.IMPORTED_RUN)})")
    p.set_defaults(func=cmd_import_checkpoint)

    p = sub.add_parser("identify", help="rank a gallery's identities for probe sequences with a trained run")
    p.add_argument("--run", required=True, help=f"a trained run folder ({_at(layout.RUN)})")
    p.add_argument("--gallery", required=True, help="folder or archive of sequences (any layout, or <id>/<seq>/*.png)")
    p.add_argument(
        "--probe",
        required=True,
        action="append",
        help="a sequence folder of PNG frames, or a folder of them (repeatable)",
    )
    p.add_argument("--top", type=int, default=5, help="identities per probe (default: 5)")
    p.add_argument("--out", help="also write the ranks as CSV (probe, rank, identity, distance)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    p.set_defaults(func=cmd_identify)

    p = sub.add_parser("export", help="a trained run's model as ONNX or TorchScript, checked against eager")
    p.add_argument("--run", required=True, help=f"a trained run folder ({_at(layout.RUN)})")
    p.add_argument("--format", required=True, choices=["onnx", "torchscript"])
    p.add_argument("--out", required=True, help="the file to write (written whole or not at all)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("record", help="record built outputs in dvc.lock, so `dvc status` agrees with Snakemake")
    _common(p)
    p.set_defaults(func=cmd_record)
    return parser


def _load(args):
    from gaitflow.config import dataset_spec, load_params

    params = load_params(args.params, args.overrides)
    name, spec = dataset_spec(params, args.dataset)
    return params, name, spec


def cmd_synth(args) -> int:
    from gaitflow.data.synth import synthesize

    params, name, spec = _load(args)
    if "synth" not in spec:
        raise GaitflowError(
            f"{args.params}: datasets.{name} has no synth section; it is a real dataset, not a synthetic one"
        )
    out = Path(args.out or spec["raw"])
    partition = Path(args.partition_out or spec.get("partition") or layout.SYNTH_PARTITION.format(dataset=name))
    kind = args.archive or params["synth"]["archive"]
    stats = synthesize(spec, params["seed"], out, kind, params["synth"]["workers"], not args.quiet, partition)
    print(
        f"synth {name}: {stats['frames']} frames in {stats['sequences']} sequences -> {out} "
        f"({stats['seconds']:.1f} s, {stats['frames_per_second']:.0f} frames/s)"
    )
    return 0


def cmd_preprocess(args) -> int:
    from gaitflow.data.preprocess import DEFAULT_TRAIN_FRACTION, preprocess

    params, name, spec = _load(args)
    pre = params["preprocess"]
    protocol = params["protocols"][spec["protocol"]]
    source = Path(args.input or spec["raw"])
    out = Path(args.out or layout.PACKED.format(dataset=name))
    with exclusive(out, "preprocess", args.wait):  # one writer: a second one is refused (or waits)
        report = preprocess(
            source,
            out,
            args.layout or spec["layout"],
            pre["img_size"],
            pre["min_foreground"],
            pre["min_frames"],
            protocol.get("train_fraction", DEFAULT_TRAIN_FRACTION),
            pre["workers"],
            progress=not args.quiet,
            split=protocol["split"],
            partition_file=spec.get("partition"),
            modality=spec.get("modality"),
        )
    skipped = sum(v["count"] for v in report["skipped"].values())
    print(
        f"preprocess {name}: {report['files']} files in {report['sequences']} sequences -> "
        f"{report['frames_kept']} frames in {report['sequences_kept']} sequences at {out} "
        f"({report['seconds']:.1f} s, {report['frames_per_second']:.0f} frames/s); {skipped} skipped"
    )
    for line in report["summary_lines"]:
        print(line)
    return 0


def _headline(flat: dict[str, float]) -> str:
    """The figures a terminal line shows: rank-1 by condition, else the retrieval figures."""
    rank1 = {k[6:]: v for k, v in flat.items() if k.startswith("rank1/")}
    if rank1:
        return "rank-1 " + ", ".join(f"{c} {v:.2f}" for c, v in rank1.items())
    shown = {k: v for k, v in flat.items() if k.count("/") == 1}
    return ", ".join(f"{k} {v:.2f}" for k, v in shown.items())


def _claim_gpu(args, params) -> None:
    """Pin this job to a free GPU before torch starts CUDA (see gaitflow.devices)."""
    from gaitflow.devices import claim_gpu

    if (args.device or params["train"]["device"]) != "cpu":
        claim_gpu()


def cmd_train(args) -> int:
    params, name, spec = _load(args)
    _claim_gpu(args, params)
    from gaitflow.train import distributed, run_config

    data = Path(args.data or layout.PACKED.format(dataset=name))
    seed = params["seed"] if args.seed is None else args.seed
    if seed < 0:
        raise GaitflowError(f"--seed {seed}: expected a non-negative integer")
    method = layout.METHOD.format(backbone=args.backbone, recipe=args.recipe, seed=seed)
    out = Path(args.out or layout.RUN.format(dataset=name, backbone=args.backbone, recipe=args.recipe, seed=seed))
    config = run_config(params, name, args.backbone, args.recipe, seed)
    rank = distributed()[0]
    work = Path(args.work) if args.work else None
    with contextlib.ExitStack() as held:
        if rank == 0:  # one writer per run: held until its MLflow run has ended
            held.enter_context(exclusive(work or out, "train", args.wait))
        return _train_held(args, params, name, config, method, data, out, work, seed, rank)


def _train_held(args, params, name, config, method, data, out, work, seed, rank) -> int:
    from gaitflow.train import train

    with _training_run(params, config, method, data, out, work, args.restart, rank) as (tracker, logged_up_to):
        summary = train(
            params,
            name,
            args.backbone,
            args.recipe,
            data,
            out,
            args.device,
            args.restart,
            progress=not args.quiet,
            on_log=lambda rec: tracker.log_metrics(rec, rec["iteration"]),
            init_from=Path(args.init_from) if args.init_from else None,
            seed=seed,
            work_dir=work,
            logged_up_to=logged_up_to,
        )
    if rank != 0:
        return 0
    _finish_training_run(tracker, params, summary, out, args.curve, args.register)
    last = summary["last"]
    loss = f", final loss {last['total']:.4f}" if "total" in last else ""
    resumed = f" (resumed from iteration {summary['resumed_from']})" if summary["resumed_from"] else ""
    print(
        f"train {method} on {name}: {summary['iterations']} iterations on "
        f"{summary['device']}{resumed}{loss} -> {summary['checkpoint']}"
    )
    return 0


@contextlib.contextmanager
def _training_run(
    params: dict, config: dict, method: str, data: Path, out: Path, work: Path | None, restart: bool, rank: int
):
    """The MLflow run a training logs into (rank 0 only): a new one, or on a resume the run's own,
    so its steps go on in one run; ended FAILED when training raises. Yields the tracker and, on a
    resume, the last step it holds (the steps past it are logged again)."""
    from gaitflow import tracking
    from gaitflow.data.partition import in_force as partition_in_force
    from gaitflow.runs import CHECKPOINT
    from gaitflow.train import clear_stale, run_key

    home = work or out  # where the checkpoint and the MLflow run id are while training
    tracker = tracking.Tracker(tracking.tracking_uri(params), params["tracking"]["enabled"] and rank == 0)
    if tracker.enabled:  # a server that would refuse this run's writes refuses it before training
        tracking.check_access(tracker.uri, tracking.experiment_name(config["dataset"]))
    if work and rank == 0:
        note = clear_stale(work, run_key(config, data))  # another setting, code or data: start over
        if note:
            print(f"gaitflow train: {note}", file=sys.stderr)
    previous = tracking.saved_run(home)
    resuming = bool(previous and (home / CHECKPOINT).exists() and not restart)
    if resuming:
        tracker.attach(previous["run_id"])  # a resumed run goes on logging into its own MLflow run
    else:
        name = config["dataset"]
        tracker.start(
            name,
            method,
            {**config, "partition": partition_in_force(data)},
            {
                "backbone": config["backbone"],
                "recipe": config["recipe"],
                "seed": str(config["seed"]),
                "dataset": name,
                "data_version": tracking.data_version(data) if data.exists() else "missing",
                **tracking.git_state(),
            },
        )
        if data.exists():
            tracker.log_dataset(name, data, "training")
    home.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        tracker.save(home)
    tracker.monitor_system(resume=resuming)
    try:
        yield tracker, tracker.last_step() if resuming else None
    except BaseException:
        tracker.end("FAILED")
        raise


def _finish_training_run(tracker, params: dict, summary: dict, out: Path, curve: str | None, register: str | None):
    """A finished training's MLflow run: its checkpoint as tags, the loss curve and files as
    artifacts, the model as a logged model; then the run ends. ``curve``: the log as a TSV too."""
    from gaitflow import tracking
    from gaitflow.plots import loss_curve
    from gaitflow.runs import CONFIG, LOG

    ckpt = Path(summary["checkpoint"])
    tracker.set_tags(
        {
            "device": summary["device"],
            "checkpoint": str(ckpt.resolve()),
            "checkpoint_sha256": tracking.file_digest(ckpt),
        }
    )
    if (out / LOG).exists() and (out / LOG).stat().st_size:
        tracker.log_artifact(loss_curve(out / LOG, out / "loss_curve.png"))
    if curve:
        from gaitflow.data.packed import write_text_atomic
        from gaitflow.plots import curve_table

        Path(curve).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(Path(curve), curve_table(out / LOG))
    for f in (CONFIG, LOG):
        tracker.log_artifact(out / f)
    if params["tracking"]["log_models"]:  # the model as an MLflow logged model, linked to this run
        tracker.log_model(out, register=register or params["tracking"]["register"])  # its id goes to mlflow.json
    tracker.end()


def cmd_evaluate(args) -> int:
    params, name, _ = _load(args)
    _claim_gpu(args, params)
    from gaitflow.config import dataset_spec

    eval_name, eval_spec = dataset_spec(params, args.eval_dataset or name)
    data = Path(args.data or layout.PACKED.format(dataset=eval_name))
    if args.imported:
        run = Path(args.run or layout.IMPORTED_RUN.format(name=args.imported))
        default = layout.IMPORTED_METRICS.format(dataset=eval_name, name=args.imported)
        method, tags = args.imported, {"imported": args.imported}
    else:
        if not args.recipe:
            raise GaitflowError("evaluate --backbone: give the run's --recipe too")
        seed = params["seed"] if args.seed is None else args.seed
        run = Path(args.run or layout.RUN.format(dataset=name, backbone=args.backbone, recipe=args.recipe, seed=seed))
        suffix = "" if eval_name == name else f"@{name}"  # trained elsewhere: the training dataset in the name
        method = layout.METHOD.format(backbone=args.backbone, recipe=args.recipe, seed=seed)
        default = f"{layout.RESULTS.format(dataset=eval_name)}/{method}{suffix}/{layout.METRICS_FILE}"
        tags = {"backbone": args.backbone, "recipe": args.recipe, "seed": str(seed)}
    out = Path(args.out or default)
    with exclusive(out, "evaluate", args.wait):
        return _evaluate_held(args, params, name, eval_name, eval_spec, data, run, method, tags, out)


def _evaluate_held(args, params, name, eval_name, eval_spec, data, run, method, tags, out) -> int:
    from gaitflow import tracking
    from gaitflow.data.packed import write_json
    from gaitflow.evaluate.run import evaluate, figures, summary
    from gaitflow.plots import view_heatmap

    tracker = tracking.Tracker(tracking.tracking_uri(params), params["tracking"]["enabled"])
    if tracker.enabled:  # a server that would refuse the metrics refuses them before the evaluation
        tracking.check_access(tracker.uri, tracking.experiment_name(name))
    metrics = evaluate(params, run, eval_name, eval_spec, data, out, args.device, progress=not args.quiet)
    write_json(out.with_name(layout.SUMMARY_FILE), summary(metrics))  # what `dvc metrics show` reads
    previous = tracking.saved_run(run)
    if previous:
        tracker.attach(previous["run_id"])  # evaluation lands in its training run
    else:
        tracker.start(name, method, {}, {**tags, "evaluated_only": "true"})
        tracker.log_dataset(eval_name, data, "evaluation")
    flat = figures(metrics)
    model_id = (previous or {}).get("model_id")  # the run's logged model: its evaluation shows on it too
    tracker.log_metrics({f"{eval_name}/{k}": v for k, v in flat.items()}, model_id=model_id)
    tracker.log_artifact(out, f"evaluation/{eval_name}")
    tracker.log_artifact(view_heatmap(metrics, out.with_name(layout.VIEW_PLOT_FILE)), f"evaluation/{eval_name}")
    if not previous:
        tracker.end()
    if "submission" in metrics:
        tracker.log_artifact(out.with_name(metrics["submission"]["file"]), f"evaluation/{eval_name}")
    print(f"evaluate {metrics['method']} on {eval_name}: {_headline(flat)} -> {out}")
    return 0


def cmd_init_tracking(args) -> int:
    """The store, and the experiments the grid's jobs log to (with --dataset, that dataset's too).
    Any other experiment is created by the first run that logs to it."""
    from gaitflow import tracking

    params, name, _ = _load(args)
    uri = tracking.tracking_uri(params)
    names = tracking.grid_experiments(params) + ([tracking.experiment_name(name)] if args.dataset else [])
    names = sorted(set(names))
    for experiment in names:  # credentials a server refuses: one line, before any job starts
        tracking.check_access(uri, experiment)
    tracking.init_store(uri, names)
    print(
        f"init-tracking: {tracking.redact(uri)} is ready "
        f"({len(names)} experiment{'' if len(names) == 1 else 's'}: {', '.join(names)})"
    )
    return 0


def cmd_baseline(args) -> int:
    from gaitflow.baseline import run_baseline

    params, name, spec = _load(args)
    data = Path(args.data or layout.PACKED.format(dataset=name))
    out = Path(args.out or layout.BASELINE.format(dataset=name))
    metrics = run_baseline(
        data, out, spec["protocol"], params["protocols"][spec["protocol"]], params["baseline"]["metric"]
    )
    from gaitflow.evaluate.run import figures

    summary = _headline(figures(metrics))
    print(f"baseline {name}: {summary} -> {out}")
    return 0


def cmd_tables(args) -> int:
    from gaitflow.tables import load_result, write_tables

    params, name, _ = _load(args)
    if name not in params["grid"]["datasets"]:
        raise GaitflowError(
            f"--dataset {name!r}: not in params.yaml grid.datasets "
            f"({', '.join(params['grid']['datasets'])}); its runs are not part of the grid"
        )
    results_dir = Path(args.results or layout.RESULTS.format(dataset=name))
    files = [results_dir / layout.BASELINE_METHOD / layout.METRICS_FILE]
    files += [
        results_dir / layout.METHOD.format(**r) / layout.METRICS_FILE
        for r in layout.runs(params)
        if r["dataset"] == name
    ]
    files += [results_dir / n / layout.METRICS_FILE for n in params["imported"]]
    results = [load_result(f) for f in files]
    out = Path(args.out or layout.TABLES.format(dataset=name))
    tables = write_tables(results, params["recipes"], out, name, params["intervals"])
    rows = sum(len(t.rows) for group in tables.values() for t in group)
    print(f"tables {name}: {len(results)} methods, {rows} table rows -> {out}")
    return 0


def cmd_import_checkpoint(args) -> int:
    from gaitflow.config import load_params
    from gaitflow.opengait import import_checkpoint

    params = load_params(args.params, args.overrides)
    entry = {}
    if args.name:
        entry = params["imported"].get(args.name)
        if entry is None:
            known = ", ".join(sorted(params["imported"])) or "none"
            raise GaitflowError(f"{args.params}: imported.{args.name}: no such entry; expected one of: {known}")
    checkpoint = args.checkpoint or entry.get("checkpoint")
    backbone = args.backbone or entry.get("backbone")
    if not checkpoint or not backbone:
        raise GaitflowError("import-checkpoint: give --checkpoint and --backbone, or --name of a params entry")
    expect = dict(entry.get("params") or {})
    for item in args.expect:
        key, sep, value = item.partition("=")
        if not sep:
            raise GaitflowError(f"--expect {item!r}: expected KEY=VALUE, e.g. variant=ou-mvlp")
        expect[key] = int(value) if value.isdigit() else value
    name = args.name or (Path(args.out).name if args.out else Path(checkpoint).stem)  # its name in results
    out = Path(args.out or layout.IMPORTED_RUN.format(name=name))
    done = import_checkpoint(
        Path(checkpoint),
        backbone,
        out,
        tuple(args.frame_shape or entry.get("frame_shape") or (64, 44)),
        expect,
        args.label or entry.get("label") or name,
        name,
    )
    shown = ", ".join(f"{k}={v}" for k, v in done["params"].items())
    print(
        f"import {done['checkpoint']} ({args.format or entry.get('format') or 'opengait'}, iteration "
        f"{done['iteration']}) -> {done['path']}: {backbone} {shown}, width {done['width']:g}, "
        f"{done['classes']} classes"
    )
    return 0


def cmd_identify(args) -> int:
    from gaitflow.data.packed import write_text_atomic
    from gaitflow.identify import identify, ranks_csv
    from gaitflow.runs import resolve_device

    if args.top < 1:
        raise GaitflowError(f"--top {args.top}: expected a positive number of identities")
    found = identify(
        Path(args.run), Path(args.gallery), [Path(p) for p in args.probe], args.top, resolve_device(args.device)
    )
    for name in found["unusable"]:
        print(
            f"gaitflow identify: warning: probe {name}: no usable frame (none, or all dropped by the "
            "pretreatment); not ranked",
            file=sys.stderr,
        )
    if not found["ranks"]:
        raise GaitflowError("no probe has a usable frame; nothing to rank")
    g = found["gallery"]
    print(f"gallery: {g['sequences']} sequences of {g['identities']} identities ({found['layout']} layout)")
    for probe, ranked in found["ranks"].items():
        print(f"{probe}: " + ", ".join(f"{k}. {i} ({d:.4g})" for k, (i, d) in enumerate(ranked, start=1)))
    if args.out:
        write_text_atomic(Path(args.out), ranks_csv(found["ranks"]))
    return 0


def cmd_export(args) -> int:
    from gaitflow.export import export_run

    done = export_run(Path(args.run), args.format, Path(args.out))
    print(
        f"export {done['backbone']} -> {done['path']} ({args.format}, {done['bytes'] / 1e6:.1f} MB): embeddings "
        f"equal the eager model's within {done['max_error']:.1e} (relative) over {len(done['errors'])} shapes"
    )
    return 0


def cmd_prune_work(args) -> int:
    """Remove each work folder under --root whose run folder holds its checkpoint (train.prune)."""
    from gaitflow.train import prune

    root = Path(args.root)
    pruned = 0
    for work in sorted(p for p in root.glob("*/*") if p.is_dir()):  # <dataset>/<run>, as layout.WORK
        pruned += prune(work, Path(layout.MODELS) / work.parent.name / work.name)
    for folder in (p for p in root.glob("*") if p.is_dir() and not any(p.iterdir())):
        folder.rmdir()
    if not args.quiet:
        print(f"prune-work: {pruned} finished run(s) removed from {root}")
    return 0


def cmd_record(args) -> int:
    """Commit every dvc.yaml stage whose outputs all exist (gaitflow.record)."""
    _load(args)
    from gaitflow.record import record

    return record(args.params, args.quiet)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except GaitflowError as exc:
        print(f"gaitflow {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # a write the step's own code did not expect to fail: files it had in place are whole (atomic writes)
        print(f"gaitflow {args.command}: error: {exc.filename or 'a file'}: no space left on its disk", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gaitflow {args.command}: interrupted; nothing partial was left in place", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
