"""``watch.yml``: what to watch, with which detectors and thresholds, where to store, whom to alert.

Validated with a schema (pydantic): unknown keys, wrong types and out-of-range values are errors
that name the key, e.g. ``targets[0].min_peers: must be >= 1``. Relative paths are relative to the
config file. ``transitwatch check-config watch.yml`` validates a file without running anything.

    storage: watch.duckdb
    registry: registry/              # RIR files (see `transitwatch registry update`)
    public_url: https://tw.example.net   # links in alerts
    bootstrap:
      archive: public                # RIB dumps (and updates since) to start from
      collectors: [rrc00, rrc01]
    stream:
      stale_after: 180               # seconds without a message before reconnecting
    alerts:
      noc-mail: {type: email, host: smtp.example.net, to: [noc@example.net]}
      hook: {type: webhook, url: https://hooks.example.net/tw, secret: s3cret}
    targets:
      - target: KP
        alerts: [noc-mail, hook]
      - target: AS4837
        name: china-unicom
        detectors: [upstream, outage]
        min_peers: 5
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Detector = Literal["upstream", "share_shift", "outage", "origin", "more_specific", "unexpected_space"]
DETECTORS: tuple[Detector, ...] = (
    "upstream",
    "share_shift",
    "outage",
    "origin",
    "more_specific",
    "unexpected_space",
)

#: event types each detector produces
DETECTOR_EVENTS: dict[str, tuple[str, ...]] = {
    "upstream": ("upstream_added", "upstream_lost"),
    "share_shift": ("share_shift",),
    "outage": ("outage_start", "outage_end"),
    "origin": ("origin_change", "moas"),
    "more_specific": ("more_specific",),
    "unexpected_space": ("unexpected_space",),
}


class ConfigError(ValueError):
    """The config file cannot be used; the message lists every problem with its key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OutageConfig(_Strict):
    ratio: float = Field(0.8, gt=0, le=1, description="outage below this fraction of the baseline")
    baseline_hours: float = Field(24.0, gt=0)
    min_duration: float = Field(0.0, ge=0, description="seconds")


class TargetConfig(_Strict):
    target: str = Field(description="a country code, AS numbers, prefixes (as for `upstreams`)")
    name: str | None = None
    detectors: list[Detector] = Field(default_factory=lambda: list(DETECTORS))
    min_peers: int = Field(3, ge=1)
    share_shift: float = Field(0.2, gt=0, le=1, description="alert when an upstream's share moves this much")
    outage: OutageConfig = OutageConfig()
    allow_origins: list[str] = Field(default_factory=list, description="ASN or PREFIX=ASN")
    alerts: list[str] = Field(default_factory=list, description="names of channels under `alerts`")

    @property
    def label(self) -> str:
        return self.name or self.target

    def event_types(self) -> set[str]:
        return {t for d in self.detectors for t in DETECTOR_EVENTS[d]} | {"data_gap"}


class BootstrapConfig(_Strict):
    archive: str = Field("public", description="folder, base URL, or `public` (RIS archives)")
    collectors: list[str] = Field(default_factory=lambda: ["rrc00"], min_length=1)
    at: str | None = Field(None, description="start from the RIB at or before this time (default: now)")
    updates: bool = Field(True, description="also apply the archive's update files up to the start")
    cache: str | None = None


class StreamConfig(_Strict):
    url: str = "wss://ris-live.ripe.net/v1/ws/?client=transitwatch"
    stale_after: float = Field(180.0, gt=0)
    max_message_bytes: int = Field(1 << 20, gt=0)
    out_of_order_tolerance: float = Field(5.0, ge=0)


class WatchConfig(_Strict):
    storage: str = "transitwatch.duckdb"
    registry: str | None = None
    public_url: str | None = None
    bin: int = Field(300, ge=1, description="series step in seconds")
    full_feed_ratio: float = Field(0.5, ge=0, le=1)
    flush_interval: float = Field(1.0, gt=0, description="seconds between store writes")
    bootstrap: BootstrapConfig = BootstrapConfig()
    stream: StreamConfig = StreamConfig()
    alerts: dict[str, dict[str, Any]] = Field(default_factory=dict)
    targets: list[TargetConfig] = Field(min_length=1)

    @field_validator("alerts")
    @classmethod
    def _channels_have_types(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, ch in v.items():
            if not isinstance(ch, dict) or "type" not in ch:
                raise ValueError(f"channel {name!r} needs a `type` (jsonl, webhook, slack, email, syslog)")
        return v

    @model_validator(mode="after")
    def _references(self) -> WatchConfig:
        labels = [t.label for t in self.targets]
        dup = {x for x in labels if labels.count(x) > 1}
        if dup:
            raise ValueError(f"target names must be unique; repeated: {', '.join(sorted(dup))}")
        for t in self.targets:
            for ch in t.alerts:
                if ch not in self.alerts:
                    raise ValueError(
                        f"target {t.label!r} names alert channel {ch!r}, which `alerts` does not define"
                    )
        return self


def _format_errors(path: str, exc: ValidationError) -> str:
    lines = [f"{path}: {exc.error_count()} problem{'s' if exc.error_count() != 1 else ''}"]
    for err in exc.errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        lines.append(f"  {loc or '(top level)'}: {err['msg']}")
    return "\n".join(lines)


def load_config(path: str | os.PathLike[str]) -> WatchConfig:
    """Read and validate a watch config; relative paths become relative to the file."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping of settings at the top level")
    try:
        cfg = WatchConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(str(p), exc)) from exc
    base = p.resolve().parent

    def rel(v: str | None) -> str | None:
        if v is None or v.startswith(("http://", "https://", "wss://", "ws://")) or v in ("public",):
            return v
        return str(base / v) if not os.path.isabs(v) else v

    changes: dict[str, Any] = {"storage": rel(cfg.storage), "registry": rel(cfg.registry)}
    boot = cfg.bootstrap.model_copy(
        update={"archive": rel(cfg.bootstrap.archive), "cache": rel(cfg.bootstrap.cache)}
    )
    alerts = {}
    for name, ch in cfg.alerts.items():
        ch = dict(ch)
        if ch.get("type") == "jsonl" and "path" in ch:
            ch["path"] = rel(ch["path"])
        alerts[name] = ch
    return cfg.model_copy(update={**changes, "bootstrap": boot, "alerts": alerts})
