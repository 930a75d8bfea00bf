"""``talker serve`` and ``talker worker``: the job service's two processes.

    talker serve  [--host H] [--port P] [--broker URL] [--results DIR|s3://B/P] [--store URL] [--config FILE]
    talker worker [--broker URL] [--results ...] [--store URL] [--config FILE] [--concurrency N] [--queues Q]
                  [--no-notifier]

A render worker node also starts its notifier, a process of its own that sends webhooks and Discord
follow-ups from the '<queue>.notify' queue.

Both read the same settings (``talker.service.config``); with no --broker they share a SQLite
queue in the data folder, so one machine needs no other server. Nothing heavy is imported here.
"""

from __future__ import annotations


def _common(p) -> None:
    p.add_argument("--broker", help="queue URL: sqla+sqlite:///FILE (default, in the data folder) or redis://HOST:6379/0 to scale out [$TALKER_BROKER]")
    p.add_argument("--results", help="where inputs and videos are kept: a folder shared with the workers, or s3://bucket/prefix [$TALKER_RESULTS]")
    p.add_argument("--store", help="job records (default: next to the broker: its SQLite file or its Redis) [$TALKER_STORE]")
    p.add_argument("--config", help="YAML settings: tenants and keys, limits, webhooks, Discord [$TALKER_CONFIG]")


def add_service_commands(sub) -> None:
    p = sub.add_parser("serve", help="run the job service's HTTP API (needs talker[serve])",
                       description="Serve the job API (OpenAPI page at /docs) and the controller that re-queues jobs of dead workers.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8000, help="TCP port")
    _common(p)
    p.set_defaults(run=_run_serve)

    p = sub.add_parser("worker", help="run a render worker for the job service (needs talker[serve])",
                       description="Take render jobs from the queue; each pool process loads the models once.")
    _common(p)
    p.add_argument("--concurrency", type=int, default=1, help="render processes (several may share one GPU)")
    p.add_argument("--queues", help="comma-separated queues to take jobs from (default: the config's worker.queue, 'talker')")
    p.add_argument("--name", help="worker name (default: talker-<pid>@<host>)")
    p.add_argument("--pool", choices=("prefork", "solo", "threads"), default="prefork",
                   help="prefork: one process per --concurrency; solo: render in this process")
    p.add_argument("--no-notifier", action="store_true",
                   help="start no notifier process beside the render processes (run `talker worker --queues "
                        "talker.notify --pool threads --concurrency 8` elsewhere to send webhooks and Discord follow-ups)")
    p.set_defaults(run=_run_worker)


def _config(args):
    _need_extra()
    import logging

    logging.basicConfig(force=True, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("httpx", "httpcore"):  # their INFO lines carry whole URLs: webhook and Discord tokens
        logging.getLogger(chatty).setLevel(logging.WARNING)
    from talker.service.config import load_config

    return load_config(args.config, broker=args.broker, results=args.results, store=args.store)


def _need_extra() -> None:
    try:
        import celery, fastapi, uvicorn  # noqa: E401, F401
    except ImportError as err:
        from talker.errors import MissingDependencyError

        raise MissingDependencyError(f"the job service needs the serve extra ({err.name} is missing): pip install 'talker[serve]'") from None


def _run_serve(args) -> int:
    import uvicorn

    from talker.service.app import create_app

    config = _config(args)
    if not config.tenants:
        _first_run_key(config, args)
    app = create_app(config)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", timeout_graceful_shutdown=5)
    return 0


def _first_run_key(config, args) -> None:
    """With no tenants configured, one local tenant whose key is kept in the data folder: made and
    printed once (with a ready curl line) on the first start, named by its file afterwards."""
    import hashlib

    from talker.service.config import KEY_FILE, LOCAL_TENANT, Tenant, data_dir, local_key

    key, made = local_key(data_dir())
    config.tenants[LOCAL_TENANT] = Tenant(name=LOCAL_TENANT, key_sha256=hashlib.sha256(key.encode()).hexdigest())
    where = data_dir() / KEY_FILE
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    if made:
        print(f"No tenants in the service config, so this machine got an API key (shown once; kept in {where}, "
              f"readable by you only):\n\n    {key}\n\nTry it:\n\n    curl -H 'Authorization: Bearer {key}' "
              f"-F image=@portrait.jpg -F text='Hello there.' http://{host}:{args.port}/v1/jobs\n", flush=True)
    else:
        print(f"No tenants in the service config: requests need the API key kept in {where}", flush=True)


def _run_worker(args) -> int:
    import os
    import socket

    from talker.errors import OptionError
    from talker.service.tasks import PROCESSES_ENV, make_celery, sweep_temp

    config = _config(args)
    sweep_temp()  # what killed workers left
    if args.concurrency < 1:
        raise OptionError(f"--concurrency must be at least 1, not {args.concurrency}")
    queues = args.queues or config.worker.queue
    renders = config.worker.queue in queues.split(",")
    app = make_celery(config)
    os.environ[PROCESSES_ENV] = str(args.concurrency)  # read by the pool processes (share_cores)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle torch threads sleep instead of spinning
    if args.pool != "prefork" and renders:  # prefork pool processes load the models themselves (worker_process_init)
        from talker.service.tasks import share_cores, warm_up

        share_cores(1)
        warm_up()
    notifier = _start_notifier(args, config) if renders and not args.no_notifier else None
    name = args.name or f"talker-{os.getpid()}@{socket.gethostname()}"
    try:
        app.worker_main([
            "worker", "--loglevel=INFO", f"--concurrency={args.concurrency}", f"--queues={queues}",
            f"--hostname={name}", f"--pool={args.pool}", "--without-gossip", "--without-mingle", "--without-heartbeat",
        ])
    finally:
        if notifier is not None:
            notifier.terminate()
            notifier.wait(15)
    return 0


NOTIFIER_THREADS = 8  # webhook deliveries and Discord follow-ups in flight at once per notifier


def _start_notifier(args, config):
    """The node's notifier: a `talker worker` of its own on the notify queue (threads, no models),
    so that slow webhook receivers never hold a render process. It stops with this node (SIGTERM
    when this process ends or dies, on Linux)."""
    import signal
    import subprocess
    import sys

    passed = [x for flag in ("config", "broker", "results", "store") if getattr(args, flag)
              for x in (f"--{flag}", getattr(args, flag))]

    def die_with_parent():
        try:
            import ctypes

            ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    return subprocess.Popen(
        [sys.executable, "-m", "talker.cli", "worker", "--queues", config.worker.notify_queue, "--pool", "threads",
         "--concurrency", str(NOTIFIER_THREADS), "--no-notifier", *passed],
        preexec_fn=die_with_parent,
    )
