"""Settings of the job service: one YAML file shared by ``talker serve`` and ``talker worker``.

Precedence: a command-line flag, then a ``TALKER_*`` environment variable, then the file, then the
defaults below. Example file (every key optional)::

    broker: redis://redis:6379/0          # default: SQLite in the data folder, no server needed
    results: /srv/talker/results          # or s3://bucket/prefix (S3_ENDPOINT_URL for MinIO & co)
    store: null                           # job records; default: next to the broker (same SQLite
                                          # file, or the same Redis)
    tenants:
      marketing: {key: "long-random-key", webhook_secret: "another-secret"}
      agency:    {key_sha256: "<sha256 hex of the key>", allow_private_webhooks: false,
                  rate_per_minute: 60, max_active_jobs: 20, allow_options: [batch_size]}
    limits: {upload_bytes: 25000000, batch_bytes: 200000000, image_pixels: 16000000, audio_seconds: 300}
    worker: {heartbeat_s: 5, stale_s: 30, max_attempts: 3, visibility_timeout_s: 3600, checkpoints: null}
    webhooks: {retries: 6, backoff_s: 2, timeout_s: 10}
    discord: {public_key: "<hex>", tenant: marketing, api_base: "https://discord.com/api/v10",
              avatars: {anna: /srv/talker/avatars/anna.png}}
    retention: {finished_s: 2592000, orphan_s: 86400, sweep_interval_s: 600}
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from talker.errors import OptionError


def data_dir() -> Path:
    """Where the single-machine defaults live: $TALKER_DATA, else $XDG_DATA_HOME/talker/service."""
    if os.environ.get("TALKER_DATA"):
        return Path(os.environ["TALKER_DATA"]).expanduser()
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "talker" / "service"


@dataclass
class Tenant:
    """One customer: its API key (plain or as sha256 hex), webhook settings, limits and what it may set.

    rate_per_minute: submissions (jobs or batches) a minute, per API process (None: no limit);
    max_active_jobs: its queued and running jobs at once (None: no limit); allow_options: operator
    options (device, precision, compile, batch_size) it may set in a job."""

    name: str
    key: str | None = None
    key_sha256: str | None = None
    webhook_secret: str | None = None
    allow_private_webhooks: bool = False
    rate_per_minute: float | None = None
    max_active_jobs: int | None = None
    allow_options: list = field(default_factory=list)


@dataclass
class Limits:
    """Upload limits: bytes per uploaded file, bytes of a whole batch request, pixels of a portrait,
    seconds of audio (or of spoken text), characters of text; min_free_bytes: the free disk space
    under which the service reports itself not ready (/readyz); wrong_keys_per_minute: wrong API
    keys from one client address after which it is refused for a minute (None: never)."""

    upload_bytes: int = 25_000_000
    batch_bytes: int = 200_000_000
    image_pixels: int = 16_000_000
    audio_seconds: float = 300.0
    text_chars: int = 5000
    min_free_bytes: int = 1_000_000_000
    wrong_keys_per_minute: int | None = 20


@dataclass
class WorkerSettings:
    """heartbeat_s: how often a running job proves its worker alive; stale_s: after how long
    without a heartbeat the controller re-queues it; max_attempts: how many times a job is started
    before a job whose worker keeps stopping is failed with the reason; visibility_timeout_s: after
    how long an unacknowledged Redis message is delivered again; reap_interval_s: how often the
    controller looks."""

    heartbeat_s: float = 5.0
    stale_s: float = 30.0
    max_attempts: int = 3
    visibility_timeout_s: float = 3600.0
    reap_interval_s: float = 5.0
    checkpoints: str | None = None
    queue: str = "talker"

    @property
    def notify_queue(self) -> str:
        """The queue of webhook deliveries and Discord follow-ups: '<queue>.notify'."""
        return f"{self.queue}.notify"


@dataclass
class WebhookSettings:
    """Deliveries are retried ``retries`` times, waiting backoff_s * 2**attempt between tries."""

    retries: int = 6
    backoff_s: float = 2.0
    timeout_s: float = 10.0


@dataclass
class RetentionSettings:
    """finished_s: how long a finished job (its record, inputs and outputs) is kept after it ended,
    in seconds (null: for ever); orphan_s: after how long files in the results folder that belong to
    no job (a killed upload, a batch whose jobs are all gone) are deleted; sweep_interval_s: how often
    the controller looks."""

    finished_s: float | None = 30 * 86400.0
    orphan_s: float = 86400.0
    sweep_interval_s: float = 600.0


@dataclass
class DiscordSettings:
    """public_key: the application's Ed25519 key (hex); tenant: whose jobs the commands make;
    avatars: portrait name -> file; api_base: where follow-ups are posted."""

    public_key: str | None = None
    tenant: str | None = None
    api_base: str = "https://discord.com/api/v10"
    avatars: dict = field(default_factory=dict)


@dataclass
class ServiceConfig:
    broker: str | None = None
    results: str | None = None
    store: str | None = None
    tenants: dict[str, Tenant] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    discord: DiscordSettings = field(default_factory=DiscordSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)

    @property
    def broker_url(self) -> str:
        return self.broker or f"sqla+sqlite:///{data_dir() / 'queue.sqlite'}"

    @property
    def results_url(self) -> str:
        return self.results or str(data_dir() / "results")

    @property
    def store_url(self) -> str:
        """The job records: --store, else next to the broker (its SQLite file or its Redis)."""
        if self.store:
            return self.store
        broker = self.broker_url
        return broker[len("sqla+"):] if broker.startswith("sqla+") else broker

    def tenant_by_key(self, key: str | None) -> Tenant | None:
        """The tenant whose API key is ``key`` (compared in constant time), or None."""
        import hashlib
        import hmac

        if not key:
            return None
        digest = hashlib.sha256(key.encode()).hexdigest()
        found = None
        for tenant in self.tenants.values():
            if tenant.key is not None and hmac.compare_digest(tenant.key.encode(), key.encode()):
                found = tenant
            if tenant.key_sha256 is not None and hmac.compare_digest(tenant.key_sha256.lower(), digest):
                found = tenant
        return found


LOCAL_TENANT = "local"
KEY_FILE = "api-key"


def local_key(folder: Path) -> tuple[str, bool]:
    """The API key of a service run with no tenants configured: read from ``folder``/api-key, or,
    on the first start, made (32 random bytes, URL-safe) and stored there readable by its owner
    only (0600). Returns (key, True when made now)."""
    import secrets

    path = Path(folder) / KEY_FILE
    try:
        return path.read_text().strip(), False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key, True


def load_config(path: str | Path | None = None, **overrides) -> ServiceConfig:
    """Read the YAML file at ``path`` (or $TALKER_CONFIG), apply $TALKER_BROKER / $TALKER_RESULTS /
    $TALKER_STORE, then the non-None ``overrides`` (broker, results, store). Raises OptionError
    naming the file and key for a bad file."""
    import yaml

    path = path or os.environ.get("TALKER_CONFIG")
    raw: dict = {}
    if path:
        try:
            raw = yaml.safe_load(Path(path).expanduser().read_text()) or {}
        except OSError as err:
            raise OptionError(f"cannot read the service config {path}: {err.strerror}") from None
        except yaml.YAMLError as err:
            raise OptionError(f"the service config {path} is not valid YAML: {err}") from None
        if not isinstance(raw, dict):
            raise OptionError(f"the service config {path} must be a mapping of settings")
    where = path or "the settings"
    try:
        config = ServiceConfig(
            broker=raw.get("broker"), results=raw.get("results"), store=raw.get("store"),
            tenants={name: Tenant(name=name, **(v or {})) for name, v in (raw.get("tenants") or {}).items()},
            limits=Limits(**(raw.get("limits") or {})),
            worker=WorkerSettings(**(raw.get("worker") or {})),
            webhooks=WebhookSettings(**(raw.get("webhooks") or {})),
            discord=DiscordSettings(**(raw.get("discord") or {})),
            retention=RetentionSettings(**(raw.get("retention") or {})),
        )
    except TypeError as err:
        raise OptionError(f"{where}: {err} (see docs/service.md for the keys)") from None
    unknown = set(raw) - {f.name for f in dataclasses.fields(ServiceConfig)}
    if unknown:
        raise OptionError(f"{where}: unknown setting(s) {', '.join(sorted(unknown))}")
    for tenant in config.tenants.values():
        if not (tenant.key or tenant.key_sha256):
            raise OptionError(f"{where}: tenant {tenant.name!r} needs a key or key_sha256")
    for name in ("broker", "results", "store"):
        value = overrides.get(name) or os.environ.get(f"TALKER_{name.upper()}")
        if value:
            setattr(config, name, value)
    return config
