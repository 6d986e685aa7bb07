"""The ``bau`` command line. Each sub-command is a thin wrapper over library functions.

Errors the user can fix (``BauError``) print as one ``error: ...`` line and exit with status 2.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from bau.core.errors import BauError, describe_os_error, one_line


def _cmd_train(args: argparse.Namespace) -> int:
    from bau.core.config import load_config
    from bau.engine.trainer import Trainer
    from bau.runs.folder import resume_config

    if args.resume and args.force:
        raise BauError("bau train: --force overwrites a run and --resume continues it; give one of them")
    if args.resume:
        cfg = resume_config(args.resume, args.overrides)
        trainer = Trainer(cfg, args.resume, resume=True, progress=not args.quiet)
    else:
        if not args.out:
            raise BauError("bau train: --out RUN_FOLDER is required (or --resume RUN_FOLDER)")
        cfg = load_config(args.config, args.overrides)
        trainer = Trainer(cfg, args.out, progress=not args.quiet, force=args.force)
    result = trainer.fit()
    run = args.resume or args.out
    print(f"run folder: {run}")
    for name, m in result["metrics"].items():
        print(f"  {name}: mAP {100 * m['mAP']:.1f}  rank-1 {100 * m['rank1']:.1f}  mINP {100 * m['mINP']:.1f}")
    print(f"  checkpoints: {result['checkpoints']['last']}" +
          (f", {result['checkpoints']['best']}" if result["checkpoints"]["best"] else ""))
    return 0


def _device(spec: str):
    from bau.core.device import resolve_device

    return resolve_device(spec)


def _cmd_eval(args: argparse.Namespace) -> int:
    from bau.core.atomic import atomic_write_json
    from bau.evaluation.inference import evaluate_target
    from bau.runs.checkpoint import model_from_checkpoint

    model, ckpt, cfg = model_from_checkpoint(args.checkpoint, _device(args.device))
    if args.workers is not None:
        cfg.data.workers = args.workers
    if args.batch_size:
        cfg.eval.batch_size = args.batch_size
    root = args.data_root or cfg.data.root
    out = {"checkpoint": ckpt["path"], "epoch": ckpt.get("epoch"), "results": []}
    for target in args.target:
        r = evaluate_target(model, target, cfg, model_device(model), root=root, rerank=args.rerank,
                            progress=not args.quiet)
        out["results"].append(r)
        n = len(r["splits"])
        print(f"{target}{' (mean of %d splits)' % n if n > 1 else ''}{' [re-ranked]' if args.rerank else ''}: "
              f"mAP {100 * r['mAP']:.1f}  rank-1 {100 * r['rank1']:.1f}  rank-5 {100 * r['rank5']:.1f}  "
              f"rank-10 {100 * r['rank10']:.1f}  mINP {100 * r['mINP']:.1f}")
    path = args.out or os.path.join(os.path.dirname(ckpt["path"]), "eval.json")
    atomic_write_json(path, out)
    print(f"results written to {path}")
    return 0


def model_device(model):
    return next(model.parameters()).device


def _cmd_extract(args: argparse.Namespace) -> int:
    from bau.runs.checkpoint import model_from_checkpoint
    from bau.runs.features import extract_to_npz

    if args.source == "torchreid":
        return _extract_torchreid(args)
    if args.model or args.weights or args.size or args.batch_size or args.workers is not None:
        raise BauError("bau extract: --model, --weights, --size, --batch-size and --workers go with --from torchreid")
    if not args.checkpoint:
        raise BauError("bau extract: --checkpoint CKPT is required (or --from torchreid --model NAME)")
    model, ckpt, cfg = model_from_checkpoint(args.checkpoint, _device(args.device))
    root = args.data_root or cfg.data.root
    n = extract_to_npz(model, cfg, args.dataset, root, args.subset, args.out, split=args.split,
                       progress=not args.quiet)
    print(f"{n} features written to {args.out}")
    return 0


def _extract_torchreid(args: argparse.Namespace) -> int:
    from bau.adapters.torchreid import extract_to_npz

    if args.checkpoint:
        raise BauError("bau extract: --checkpoint is a bau checkpoint; with --from torchreid pass --weights PATH")
    if not args.model:
        raise BauError("bau extract --from torchreid: --model NAME is required (a torchreid model name, "
                       "e.g. osnet_ain_x1_0)")
    if not args.data_root and not all(d.startswith("folder:") for d in args.dataset):
        raise BauError("bau extract --from torchreid: --data-root is required (no bau config to take it from)")
    n = extract_to_npz(args.model, args.weights, args.dataset, args.data_root or ".", args.subset, args.out,
                       split=args.split, size=args.size, device=str(_device(args.device)),
                       batch_size=args.batch_size or 64, workers=args.workers or 0, progress=not args.quiet)
    print(f"{n} features of torchreid {args.model} written to {args.out}")
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from analysis.feature_compare import same_images
    from analysis.feature_report import write_report
    from bau.runs.features import combine_feature_sets, read_feature_file

    if args.perplexity <= 0:
        raise BauError(f"--perplexity {args.perplexity}: expected a positive number")
    if args.tsne_iters < 1:
        raise BauError(f"--tsne-iters {args.tsne_iters}: expected a positive number of iterations")
    sets = [read_feature_file(p) for p in args.features]
    echo = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr))
    if args.compare and args.domains:
        raise BauError("bau analyze: --compare and --domains exclude each other")
    if len(sets) > 1 and (args.compare or (not args.domains and same_images(sets))):
        return _compare(sets, args, echo)
    if args.compare:
        raise BauError("--compare: expected two or more feature files of the same images")
    fs = combine_feature_sets(sets, args.features)
    numbers, written = write_report(fs, args.features, args.out, max_points=args.max_points,
                                    perplexity=args.perplexity, seed=args.seed, tsne_iters=args.tsne_iters, echo=echo)
    geo = numbers["geometry"]
    align = "n/a" if geo["alignment"] is None else f"{geo['alignment']:.4f}"
    print(f"{len(fs)} images, {len(fs.domain_names)} domain(s): alignment {align}  uniformity {geo['uniformity']:.4f}")
    for name, m in numbers["retrieval"]["per_domain"].items():
        print(f"  {name}: mAP {100 * m['mAP']:.1f}  rank-1 {100 * m['rank1']:.1f}")
    print("wrote " + ", ".join(written))
    return 0


def _compare(sets, args: argparse.Namespace, echo) -> int:
    """``bau analyze`` of several models' features of the same images: one side-by-side report."""
    from analysis.feature_compare import comparison_table, write_comparison

    numbers, written = write_comparison(sets, args.features, args.out, max_points=args.max_points,
                                        perplexity=args.perplexity, seed=args.seed, tsne_iters=args.tsne_iters,
                                        echo=echo)
    header, rows = comparison_table(numbers, numbers["domain_names"])
    print(f"{len(sets)} models on the same {numbers['num_images']} images")
    for row in rows:
        print("  " + "  ".join(f"{h} {v}" for h, v in zip(header, row) if h != "model") + f"  ({row[0]})")
    print("wrote " + ", ".join(written))
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from bau.data.synthetic import format_stats, generate

    kwargs = {k: v for k, v in {"num_domains": args.domains, "ids_per_domain": args.ids, "seed": args.seed,
                                "height": args.height, "width": args.width}.items() if v is not None}
    stats = generate(args.out, overwrite=args.force, **kwargs)
    print(format_stats(stats))
    return 0


def _cmd_data_inspect(args: argparse.Namespace) -> int:
    from bau.data.inspect import inspect_datasets

    report = inspect_datasets(args.root, args.names, split=args.split, check_images=not args.no_image_check)
    print(report.text)
    if not report.ok:  # a missing dataset or a broken image: `error: ...` on stderr, exit status 2
        raise BauError(f"data inspect: {report.summary()}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from bau.demo import run_demo

    run_demo(args.out, data_dir=args.data, config=args.config, overrides=args.overrides,
             progress=not args.quiet)
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from bau.engine.cluster import OPTION_KEYS
    from bau.engine.sweep import run_sweep

    if args.status:
        from bau.engine.sweep_status import format_rows, sweep_rows

        print(format_rows(sweep_rows(args.out)))
        return 0
    if not args.config:
        raise BauError("bau sweep: --config SWEEP.yaml is required (or --status to show a sweep folder's runs)")
    given = {k: getattr(args, k) for k in OPTION_KEYS}
    rows = run_sweep(args.config, args.out, args.overrides, progress=not args.quiet, only=args.only, force=args.force,
                     jobs=args.jobs, launcher=args.launcher, launcher_given=given)
    done = sum(r["status"] == "finished" for r in rows)
    print(f"sweep {args.out}: {done}/{len(rows)} runs finished; summary in {args.out}/summary.csv")
    return 0


def _cmd_app(args: argparse.Namespace) -> int:
    from bau.app_launcher import launch

    return launch(args.runs, port=args.port, host=args.host)


def build_parser() -> argparse.ArgumentParser:
    from analysis.embedding import add_tsne_options

    p = argparse.ArgumentParser(prog="bau", description="Train, evaluate and analyse BAU (Balancing Alignment and "
                                                        "Uniformity) for domain-generalizable person re-ID.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="train a model from a YAML config (+ key=value overrides)")
    t.add_argument("--config", help="YAML config, e.g. experiments/protocol2/ms_cs_c3-m.yaml")
    t.add_argument("--out", help="run folder to create (config, log, checkpoints, results)")
    t.add_argument("--resume", metavar="RUN", help="continue the run in this folder from its last.pt")
    t.add_argument("--force", action="store_true",
                   help="with --out: overwrite the run already in that folder (its config, log, results, checkpoints)")
    t.add_argument("overrides", nargs="*", metavar="section.key=value", help="config overrides, e.g. loss.lam=1.5")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("eval", help="evaluate a checkpoint on unseen target datasets")
    e.add_argument("--checkpoint", required=True, help="a bau checkpoint (.pt) or a run folder")
    e.add_argument("--target", required=True, nargs="+", help="dataset name(s), e.g. market1501 viper folder:PATH")
    e.add_argument("--data-root", help="datasets root (default: the checkpoint config's data.root)")
    e.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (Zhong et al. 2017)")
    e.add_argument("--out", help="JSON file for the results (default: eval.json next to the checkpoint)")
    e.add_argument("--device", default="auto")
    e.add_argument("--workers", type=int)
    e.add_argument("--batch-size", type=int)
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=_cmd_eval)

    x = sub.add_parser("extract", help="write features + pids + camids + domain ids + paths to a .npz")
    x.add_argument("--checkpoint", help="a bau checkpoint (.pt) or a run folder")
    x.add_argument("--from", dest="source", choices=["bau", "torchreid"], default="bau",
                   help="whose model: bau (--checkpoint) or torchreid (--model, --weights; "
                        "pip install 'bau[torchreid]')")
    x.add_argument("--model", help="--from torchreid: the model name of torchreid's factory, e.g. osnet_ain_x1_0")
    x.add_argument("--weights",
                   help="--from torchreid: its checkpoint (read weights-only; default: seeded random init)")
    x.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                   help="--from torchreid: input height and width (default torchreid's 256 128; hacnn 160 64)")
    x.add_argument("--batch-size", type=int, help="--from torchreid: images per batch (default 64)")
    x.add_argument("--workers", type=int, help="--from torchreid: image-loading processes (default 0)")
    x.add_argument("--dataset", required=True, nargs="+", help="dataset name(s); each gets its domain id in order")
    x.add_argument("--subset", default="test", choices=["train", "query", "gallery", "test", "all"],
                   help="which lists to extract (test = query + gallery)")
    x.add_argument("--split", type=int, default=0, help="split index for the small datasets")
    x.add_argument("--data-root")
    x.add_argument("--out", required=True, help="output .npz")
    x.add_argument("--device", default="auto")
    x.add_argument("--quiet", action="store_true")
    x.set_defaults(func=_cmd_extract)

    y = sub.add_parser("analyze", help="alignment, uniformity, t-SNE and CMC/mAP of feature files of any model",
                       description="Diagnostics of feature files (.npz from `bau extract`, or from any re-ID model "
                                   "in that format: docs/feature_files.md). Files of other datasets are several "
                                   "domains; files of the same images are several models, compared side by side.")
    y.add_argument("--features", required=True, nargs="+", metavar="FILE.npz",
                   help="feature files: of other datasets, several domains of one report; of the same images "
                        "(other models), a side-by-side comparison")
    y.add_argument("--compare", action="store_true",
                   help="the files are models to compare (the default when they hold the same images)")
    y.add_argument("--domains", action="store_true",
                   help="the files are domains of one report, even when their rows agree (the default otherwise)")
    y.add_argument("--out", required=True, help="output folder: report.md, report.json, tsne.png/.pdf/.json")
    y.add_argument("--max-points", type=int, default=2000,
                   help="images in the t-SNE (seeded sample; default 2000; 0: no t-SNE)")
    add_tsne_options(y)
    y.add_argument("--seed", type=int, default=0, help="seed of the t-SNE and its sample (default 0)")
    y.add_argument("--quiet", action="store_true", help="no progress messages")
    y.set_defaults(func=_cmd_analyze)

    s = sub.add_parser("synth", help="generate the synthetic multi-domain pedestrian dataset")
    s.add_argument("--out", required=True, help="output folder (one Market-1501-layout folder per domain)")
    s.add_argument("--domains", type=int)
    s.add_argument("--ids", type=int, help="identities per domain")
    s.add_argument("--seed", type=int)
    s.add_argument("--height", type=int)
    s.add_argument("--width", type=int)
    s.add_argument("--force", action="store_true", help="replace domain folders that hold other data")
    s.set_defaults(func=_cmd_synth)

    d = sub.add_parser("data", help="dataset tools")
    dsub = d.add_subparsers(dest="data_command", metavar="ACTION")
    di = dsub.add_parser("inspect",
                         help="ids / images / cameras per split, to check a copy against the paper's Table 1")
    di.add_argument("--root", required=True, help="datasets root folder")
    di.add_argument("names", nargs="+", help="dataset names, e.g. market1501 msmt17 full:cuhk03 folder:PATH")
    di.add_argument("--split", type=int, default=0)
    di.add_argument("--no-image-check", action="store_true", help="skip opening every image")
    di.set_defaults(func=_cmd_data_inspect)

    m = sub.add_parser("demo", help="the embedded default end to end: synthetic data, BAU on MobileNetV2, evaluation")
    m.add_argument("--out", default="runs/demo")
    m.add_argument("--data", default="data/synthetic", help="where the synthetic domains are (generated if missing)")
    m.add_argument("--config", default=None, help="default: experiments/demo.yaml")
    m.add_argument("overrides", nargs="*", metavar="section.key=value")
    m.add_argument("--quiet", action="store_true")
    m.set_defaults(func=_cmd_demo)

    w = sub.add_parser("sweep", help="train a grid of runs (skips finished, resumes interrupted) + summary table")
    w.add_argument("--config", help="sweep YAML, e.g. experiments/sweeps/demo.yaml")
    w.add_argument("--out", required=True, help="sweep folder (one run folder per grid point)")
    w.add_argument("--only", nargs="+", metavar="RUN", help="train only these run names")
    w.add_argument("--force", action="store_true",
                   help="retrain from scratch the runs trained with other settings than the sweep asks for now")
    w.add_argument("overrides", nargs="*", metavar="section.key=value", help="overrides for every run")
    w.add_argument("--quiet", action="store_true")
    w.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="train N runs at once, each in its own process (default 1; --launcher local)")
    w.add_argument("--status", action="store_true",
                   help="show every run of the sweep folder --out: state, job id, last logged step, error")
    c = w.add_argument_group("cluster (README: On a cluster; needs pip install bau[cluster])")
    c.add_argument("--launcher", choices=["local", "slurm", "submitit-local"],
                   help="local (default): this machine; slurm: one Slurm job array through submitit; "
                        "submitit-local: the same jobs on this machine")
    c.add_argument("--partition", help="Slurm partition")
    c.add_argument("--gpus-per-run", type=int, help="GPUs of each run, one process each (0: CPU)")
    c.add_argument("--nodes-per-run", type=int, help="nodes of each run (its GPUs split evenly over them)")
    c.add_argument("--cpus-per-gpu", type=int, help="CPU cores per GPU process (data loading)")
    c.add_argument("--mem", help="memory per node, e.g. 64G")
    c.add_argument("--time", help="time limit of each job: minutes or D-HH:MM:SS (the run requeues itself near it)")
    c.add_argument("--array-parallelism", type=int, help="runs of the job array running at once (default 64)")
    c.add_argument("--sbatch", action="append", metavar="KEY=VALUE",
                   help="an extra sbatch parameter, e.g. qos=high (repeat for several)")
    w.set_defaults(func=_cmd_sweep)

    a = sub.add_parser("app", help="serve the Streamlit app for a runs folder on localhost")
    a.add_argument("--runs", default="runs", help="the only folder the app may browse")
    a.add_argument("--port", type=int, default=8501)
    a.add_argument("--host", default="127.0.0.1", help="listen address (default: this machine only)")
    a.set_defaults(func=_cmd_app)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except BauError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # a file problem no check foresaw: still one line, naming the file
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{describe_os_error(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; checkpoints already written are intact", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
