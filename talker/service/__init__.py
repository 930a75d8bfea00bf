"""The job service: ``talker serve`` (FastAPI HTTP API) and ``talker worker`` (Celery workers).

Modules, one job each:

    config    the service settings (YAML file, flags and TALKER_* variables on top)
    jobs      job records in the store next to the broker (a SQL table, or Redis hashes)
    results   inputs and outputs in a folder or an S3-compatible bucket, written atomically
    forms     a form's fields -> validated MakeOptions fields (the one place the API validates)
    security  tenants and API keys, rate limits, body and upload limits, content sniffing
    webhooks  signed, retried job notifications
    discord   the Discord slash-command front end (Ed25519, deferred answer, follow-up)
    batches   CSV / JSONL manifests -> one job per row (scripts x avatars)
    metrics   /metrics for Prometheus (a cached queue depth read on its own connection)
    heartbeat the heartbeats of running jobs, sent by a process of their own
    openapi   the OpenAPI document: security schemes, models, error answers
    tasks     the Celery app, the render task and the notifications
    app       the FastAPI app and the controller that re-queues jobs of dead workers
    commands  the two CLI subcommands

Everything here needs the ``talker[serve]`` extra; nothing heavy is imported by ``commands``.
"""
