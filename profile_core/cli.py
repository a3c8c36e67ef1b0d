"""Command line: ``python -m profile_core <command>`` — the same core the app uses."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from profile_core.settings import current


def _print_json(obj) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


def cmd_demo_data(a: argparse.Namespace) -> int:
    from profile_core.synth import generate_portfolio, write_portfolio

    if a.partitions:  # a partitioned Parquet lake, one partition in memory at a time (profile_core.lake)
        from profile_core.lake import write_demo_lake

        meta = write_demo_lake(a.out, a.customers, a.partitions, seed=a.seed, jobs=a.jobs, resume=a.resume,
                               engine=a.engine, progress=lambda k, n: print(f"partition {k}/{n}", file=sys.stderr))
        print(f"{meta['n_customers']} customers in {meta['partitions']} partitions → {a.out}: "
              + ", ".join(f"{t}={n}" for t, n in meta["rows"].items()))
        return 0
    paths = write_portfolio(generate_portfolio(a.customers, a.seed), a.out, fmt=a.format)
    for table, path in paths.items():
        print(f"{table}: {path}")
    return 0


def cmd_load(a: argparse.Namespace) -> int:
    from profile_core.ingest import Mapping, MappingError, load_into_workspace, store_for
    from profile_core.store import Workspace

    files = [(Path(f).name, Path(f)) for f in a.files]
    try:
        mapping = Mapping.load(a.mapping) if a.mapping else None
    except MappingError as e:
        print(e.message(a.lang))
        return 2
    if mapping is not None and mapping.errors():  # refused before any file is read
        for i in mapping.errors():
            print(i.message(a.lang))
        return 2
    ws = Workspace(a.workspace)
    try:
        result = load_into_workspace(files, ws, dataset=a.dataset, mapping=mapping, store=store_for(a.workspace))
    finally:
        ws.close()
    report = result.report.to_frame(a.lang)
    if len(report):
        print(report.to_string(index=False))
    print(result.report.summary(a.lang))
    if result.version is not None:
        print(f"dataset {a.dataset!r} version {result.version}: "
              + ", ".join(f"{k}={len(v)}" for k, v in result.tables.items()))
    if any(i.problem == "mapping.unmatched" for i in result.report.errors):
        return 2
    return 0 if result.report.ok else 1


def cmd_propose(a: argparse.Namespace) -> int:
    from profile_core.ingest import propose_files

    mapping, unreadable = propose_files([(Path(f).name, Path(f)) for f in a.files])
    for i in unreadable:
        print(i.message(a.lang))
    if not mapping.tables:
        return 2
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(mapping.to_yaml(annotated=True, lang=a.lang), encoding="utf-8")
    for tm in mapping.tables:
        print(f"{tm.file}: {tm.table or '?'} ({len(tm.columns)} columns)")
    for i in sorted(mapping.problems(), key=lambda i: i.severity != "error"):
        print(f"{i.severity}: {i.message(a.lang)}")
    print(f"→ {a.out}: edit it, then python -m profile_core load FILES --mapping {a.out}")
    return 0


def cmd_features(a: argparse.Namespace) -> int:
    from profile_core.lake import is_lake

    if is_lake(a.data):  # DuckDB over the lake's Parquet files straight to Parquet (profile_core.lake)
        from profile_core.lake import lake_features

        if not a.out.endswith(".parquet"):
            print("features of a lake are written as .parquet", file=sys.stderr)
            return 2
        summary = lake_features(a.data, a.out, memory_limit=a.memory_limit, threads=a.threads)
        print(f"{summary['rows']} customers × {summary['columns']} columns → {a.out}")
        return 0
    from profile_core.pipeline import feature_frame

    frame = feature_frame(a.data, workspace=a.workspace)
    _write_frame(frame, a.out)
    print(f"{len(frame)} customers × {frame.shape[1]} columns → {a.out}")
    return 0


def _write_frame(frame, out: str) -> None:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    if out.endswith(".parquet"):
        frame.to_parquet(out, index=False)
    else:
        from profile_core.exports import safe_frame

        safe_frame(frame).to_csv(out, index=False, encoding="utf-8-sig")  # formula-safe, like exports


def _stream_wanted(data: str) -> bool:
    from profile_core.stream_train import stream_wanted

    return stream_wanted(data)


def cmd_train(a: argparse.Namespace) -> int:
    from profile_core.i18n import t
    from profile_core.pipeline import train_and_save
    from profile_core.service import jsonable
    from profile_core.views import metrics_table

    roles = dict(r.split("=", 1) for r in a.role or [] if "=" in r)
    hybrid = {"hybrid": a.hybrid} if getattr(a, "hybrid", None) else None  # None: the engine's default
    if getattr(a, "engine", "local") == "ray":  # Ray Train, a.workers CPU workers (profile_core.distributed)
        from profile_core.distributed import train_ray

        summary = train_ray(a.data, a.out, workers=a.workers, tasks=a.task, roles=roles, use_age=a.use_age,
                            arch=a.arch, weighting=a.weighting, epochs=a.epochs, seed=a.seed, workspace=a.workspace,
                            settings=hybrid)
    elif a.stream or (a.stream is None and _stream_wanted(a.data)):  # bounded memory (profile_core.stream_train)
        from profile_core.stream_train import train_streamed, unsupported

        unsupported(baselines=a.baselines, tune=a.tune, hybrid=getattr(a, "hybrid", None) or "none")
        summary = train_streamed(a.data, a.out, tasks=a.task, roles=roles, use_age=a.use_age, arch=a.arch,
                                 weighting=a.weighting, epochs=a.epochs, seed=a.seed, device=a.device,
                                 chunk_rows=a.chunk_rows, progress=not a.json)
    else:
        summary = train_and_save(
            a.data, a.out, tasks=a.task, roles=roles, use_age=a.use_age, arch=a.arch, weighting=a.weighting,
            epochs=a.epochs, seed=a.seed, device=a.device, baselines=a.baselines, workspace=a.workspace,
            progress=not a.json, tune=a.tune, settings=hybrid,
        )
    if a.json:  # strict JSON: NaN and infinities become null
        print(json.dumps(jsonable(summary), ensure_ascii=False, indent=2, allow_nan=False))
        return 0
    from profile_core.bundle import read_manifest

    manifest = read_manifest(summary["bundle"])
    print(t("cli.trained", a.lang, bundle=summary["bundle"], device=summary["device"]))
    print(metrics_table(summary["metrics"], manifest["tasks"], a.lang).to_string(index=False, na_rep="—"))
    if summary["excluded_inputs"]:
        print(f"\n{t('views.excluded_title', a.lang)}:")
        for col, why in summary["excluded_inputs"].items():
            print(f"  {col}: {t(f'views.excluded.{why}', a.lang)}")
    if summary.get("comparison"):
        import pandas as pd

        print(pd.DataFrame(summary["comparison"]).to_string(index=False, na_rep="—"))
    return 0


def cmd_score(a: argparse.Namespace) -> int:
    from profile_core.pipeline import score

    if getattr(a, "engine", "local") == "ray":  # Ray Data over a feature table (profile_core.distributed)
        from profile_core.distributed import score_ray

        stats = score_ray(a.bundle, a.data, a.out, batch_size=a.chunk_size, actors=a.workers)
        print(f"scored {stats.rows} customers → {a.out}/ ({stats.files} Parquet files, {stats.actors} actors)")
        return 0
    n = score(a.bundle, a.data, a.out, workspace=a.workspace, chunk_size=a.chunk_size, progress=True)
    print(f"scored {n} customers → {a.out}")
    return 0


def cmd_serve(a: argparse.Namespace) -> int:
    from profile_core.service import serve

    bundle = a.bundle
    if bundle is None:  # the champion of the data set (profile_core.store), the model the app's users see
        from profile_core.store import Workspace

        with Workspace(a.workspace) as ws:
            champion = ws.champion(a.dataset) if ws.has_dataset(a.dataset) else None
        if champion is None:
            print(f"no --bundle and data set {a.dataset!r} in {a.workspace or current().workspace} has no champion: "
                  "choose one on the model page or pass --bundle")
            return 2
        bundle, a.workspace = champion["bundle_path"], a.workspace or str(current().workspace)
    serve(bundle, host=a.host, port=a.port, workspace=a.workspace, dataset=a.dataset, keys=a.keys,
          audit=a.audit, workers=a.workers, log_level=a.log_level, lake=a.lake, features=a.features)
    return 0


def cmd_new_key(a: argparse.Namespace) -> int:
    from profile_core.service import new_key

    print(new_key(a.keys, a.role, rm_id=a.rm_id, name=a.name or "", reveal=a.reveal))  # shown only this once
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    from profile_core.report import report_cli

    return report_cli(a.bundle, a.data, out=a.out, customer=a.customer, portfolio=a.portfolio,
                      workspace=a.workspace, lang=a.lang, role=a.role, rm_id=a.rm_id)


def cmd_explain(a: argparse.Namespace) -> int:
    from profile_core.pipeline import explain_cli

    return explain_cli(a.bundle, a.data, customer=a.customer, global_out=a.global_out,
                       workspace=a.workspace, lang=a.lang, sample=a.sample or None, features=a.features)


def cmd_bench(a: argparse.Namespace) -> int:
    import importlib

    module = importlib.import_module(f"profile_core.bench.{a.which}")
    kwargs = {k: v for k, v in vars(a).items() if k in {"dataset", "seeds", "quick", "sizes"} and v is not None}
    result = module.run(**kwargs)
    _print_json(result)
    return 0


def cmd_audit(a: argparse.Namespace) -> int:
    from profile_core.audit import audit_cli

    return audit_cli(a.action, a.log or f"{a.workspace}.audit.jsonl", workspace=a.workspace, users=a.users,
                     user=a.user, lang=a.lang)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m profile_core", description="客户全景画像 / Customer Panorama")
    p.add_argument("--lang", default="zh", choices=["zh", "en"])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("demo-data", help="generate the synthetic demo portfolio")
    s.add_argument("--customers", type=int, default=2000)
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--out", default="data/demo")
    s.add_argument("--format", default="parquet", choices=["parquet", "csv"])
    s.add_argument("--partitions", type=int, help="write a partitioned Parquet lake (<out>/<table>/part=k/) "
                                                  "generated one partition at a time; ≤ 50k customers each")
    s.add_argument("--jobs", type=int, default=1,
                   help="with --partitions: worker processes (Ray CPUs with --engine ray), one partition in "
                        "memory each; the files are the same bytes for any number")
    s.add_argument("--resume", action="store_true",
                   help="with --partitions: continue an interrupted run of the same arguments in --out, keeping "
                        "its complete partitions")
    s.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="with --partitions: ray generates partitions as Ray tasks ($RAY_ADDRESS joins a cluster "
                        "whose nodes share --out; extra scale)")
    s.set_defaults(func=cmd_demo_data)

    data_help = "a folder of table files, one flat file, or workspace:NAME"
    s = sub.add_parser("load", help="files → workspace, printing the validation report")
    s.add_argument("files", nargs="+")
    s.add_argument("--workspace", default=str(current().workspace))
    s.add_argument("--dataset", default="main")
    s.add_argument("--mapping", help="a column mapping (YAML, e.g. from propose) applied before validation; exits 2 "
                                     "on an error-level problem or a table that matches no file's header")
    s.set_defaults(func=cmd_load)

    s = sub.add_parser("propose", help="files → a proposed column mapping (YAML with comments) to edit and load")
    s.add_argument("files", nargs="+")
    s.add_argument("--out", default="mapping.yaml")
    s.set_defaults(func=cmd_propose)

    s = sub.add_parser("features", help="write the one-row-per-customer feature table")
    s.add_argument("--data", required=True, help=data_help)
    s.add_argument("--workspace", default=str(current().workspace))
    s.add_argument("--out", default="features.parquet")
    s.add_argument("--memory-limit", default="2GB", help="DuckDB memory limit for a lake (spills past it)")
    s.add_argument("--threads", type=int, help="DuckDB threads for a lake (default: up to 4)")
    s.set_defaults(func=cmd_features)

    s = sub.add_parser("train", help="train a multi-task model and save a bundle")
    s.add_argument("--data", required=True, help=data_help)
    s.add_argument("--workspace", default=str(current().workspace))
    s.add_argument("--arch", default="shared-bottom", choices=["shared-bottom", "mmoe", "ple"])
    s.add_argument("--weighting", default="uncertainty", choices=["fixed", "uncertainty", "gradnorm", "dwa"])
    s.add_argument("--epochs", type=int, default=None)
    s.add_argument("--seed", type=int, default=42)
    s.add_argument("--device", default="auto")
    s.add_argument("--baselines", action="store_true", help="also train single-task MLPs and LightGBM")
    s.add_argument("--tune", type=float, metavar="SECONDS",
                   help="first search trainer settings for this long (validation split, seeded)")
    s.add_argument("--task", action="append", metavar="NAME[:KIND]",
                   help="train only this declared label (repeatable; default: every declared label)")
    s.add_argument("--role", action="append", metavar="NAME=ROLE",
                   help="the role of a label: pd | score | grade | generic (default: proposed from its name)")
    s.add_argument("--use-age", action="store_true", help="let age be a model input (off by default)")
    s.add_argument("--hybrid", choices=["none", "blend"],
                   help="blend (default; the net alone with --stream or --engine ray): each head blends the net "
                        "with its own LightGBM, weighted on the validation split; none: the net alone")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="ray: Ray Train with --workers CPU workers (extra scale; $RAY_ADDRESS joins a cluster)")
    s.add_argument("--workers", type=int, default=2, help="Ray Train workers (--engine ray)")
    s.add_argument("--stream", action=argparse.BooleanOptionalAction, default=None,
                   help="stream a feature file or lake in bounded memory (default: above 1,000,000 customers)")
    s.add_argument("--chunk-rows", type=int, default=50_000, help="rows read and trained on at once (--stream)")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("score", help="bundle + data → predictions per customer for all tasks")
    s.add_argument("--bundle", required=True)
    s.add_argument("--data", required=True, help=data_help)
    s.add_argument("--workspace", default=str(current().workspace))
    s.add_argument("--out", required=True, help=".csv or .parquet")
    s.add_argument("--chunk-size", type=int, default=50_000)
    s.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="ray: Ray Data over a feature table (.parquet file or folder); --out is a folder of "
                        "Parquet files, --chunk-size the batch per actor (extra scale; $RAY_ADDRESS joins a cluster)")
    s.add_argument("--workers", type=int, help="Ray Data scoring actors (--engine ray; default one per CPU but one)")
    s.set_defaults(func=cmd_score)

    s = sub.add_parser("explain", help="print a customer's card and reason codes, or global importance")
    s.add_argument("--bundle", required=True)
    s.add_argument("--data", default="data/demo", help=data_help)
    s.add_argument("--workspace", default=str(current().workspace))
    s.add_argument("--customer")
    s.add_argument("--global", dest="global_out", metavar="OUT", help="write per-task importance (CSV)")
    s.add_argument("--sample", type=int, default=10_000,
                   help="global importance over at most this many customers, stratified by PD grade (0: all)")
    s.add_argument("--features", help="the feature table of a lake --data (features --out): cards and global "
                                      "importance read it instead of the portfolio")
    s.set_defaults(func=cmd_explain)

    s = sub.add_parser("serve", help="REST API (FastAPI + uvicorn); OpenAPI docs at /docs")
    s.add_argument("--bundle", help="default: the champion of --dataset in the workspace")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workspace", help="DuckDB workspace with the customers for /v1/customers/{id}/profile")
    s.add_argument("--dataset", default="main")
    s.add_argument("--keys", help="API keys file (sha256 hashes; see new-key); without it: 127.0.0.1 only")
    s.add_argument("--audit", help="audit log (default: $PROFILE_AUDIT, else <workspace>.audit.jsonl)")
    s.add_argument("--workers", type=int, default=1)
    s.add_argument("--log-level", default="info")
    s.add_argument("--lake", help="profiles from a partitioned data set (demo-data --partitions), one customer "
                                  "read by key; needs --features")
    s.add_argument("--features", help="the lake's feature table (features --data LAKE --out F.parquet)")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("new-key", help="create an API key: its sha256 goes to the keys file, the key is printed")
    s.add_argument("--keys", required=True)
    s.add_argument("--role", required=True, choices=["rm", "analyst", "auditor", "admin"])
    s.add_argument("--rm-id", help="the relationship manager's rm_id (role rm)")
    s.add_argument("--name", help="who holds the key")
    s.add_argument("--reveal", action="store_true", help="admin only: identities unmasked")
    s.set_defaults(func=cmd_new_key)

    s = sub.add_parser("report", help="self-contained HTML report of one customer or of the portfolio")
    s.add_argument("--bundle", required=True)
    s.add_argument("--data", default="data/demo", help=data_help)
    s.add_argument("--workspace", default=str(current().workspace))
    which = s.add_mutually_exclusive_group(required=True)
    which.add_argument("--customer", help="customer_id: the panorama card with reason codes and waterfalls")
    which.add_argument("--portfolio", action="store_true", help="distributions, grades, model card")
    s.add_argument("--out", required=True, help=".html")
    s.add_argument("--role", default="analyst", choices=["rm", "analyst", "auditor", "admin"])
    s.add_argument("--rm-id")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("audit", help="verify the audit log, or (auditors) quarantine a damaged tail and resume")
    s.add_argument("action", choices=["verify", "repair"])
    s.add_argument("--log", help="the audit log (default: <workspace>.audit.jsonl)")
    s.add_argument("--workspace", default=str(current().workspace), help="holds the log's anchor (table _audit_anchor)")
    s.add_argument("--users", default="config/users.yaml", help="users file (repair: the auditor signs in)")
    s.add_argument("--user", help="repair: the auditor's user name (password asked, or $PROFILE_PASSWORD)")
    s.set_defaults(func=cmd_audit)

    s = sub.add_parser("bench", help="benchmarks; results in benchmarks/results/")
    s.add_argument("which", choices=["ingest", "train", "explain", "accuracy", "perf", "scoring", "api_load",
                                     "api_memory", "sharing", "scale", "whatif"])
    s.add_argument("--dataset", choices=["taiwan", "census"])
    s.add_argument("--seeds", type=int)
    s.add_argument("--quick", action="store_true", default=None)
    s.add_argument("--sizes", help="scale: customer counts, comma-separated (default 100000,1000000)")
    s.set_defaults(func=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command; a problem a person can fix prints its one sentence (no traceback) and exits 2."""
    import duckdb

    from profile_core.i18n import MessageError, t

    args = build_parser().parse_args(argv)
    lang = getattr(args, "lang", "zh")
    try:
        return args.func(args)
    except MessageError as err:
        message = err.message(lang)
    except (OSError, KeyError, ValueError, duckdb.Error) as err:  # files, data set names, configs, locks
        message = str(err.args[0] if isinstance(err, KeyError) and err.args else err).strip().splitlines()[0]
    except KeyboardInterrupt:
        return 130
    print(t("cli.error", lang, message=message), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
