"""An optional Prometheus (Debian's ``prometheus``) on 127.0.0.1:9090, scraping every service.

``modyard dev infra up --with prometheus`` (``make up WITH=prometheus``) starts it: jobs named
``modyard-<service>`` scrape each service's ``/metrics`` at the URL the settings give it (loopback
in development), with the alert rules of ``deploy/monitoring/alerts.yml`` loaded, so a developer
sees the metrics, exemplars and alerts locally at http://127.0.0.1:9090. Data lives in
``.run/prometheus/data`` (two days). Without ``--with prometheus`` it is only stopped and reported
when an earlier ``up`` started it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from modyard.common.settings import CommonSettings
from modyard.dev.component import Component, find_binary
from modyard.dev.paths import RunLayout
from modyard.dev.processes import (
    StartupError,
    remove_pid,
    spawn_daemon,
    terminate,
    wait_until,
    write_pid,
)
from modyard.sdk.probes import http_status

HOST = "127.0.0.1"
PORT = 9090
RULES = Path("deploy") / "monitoring" / "alerts.yml"


def scrape_targets(settings: CommonSettings) -> dict[str, str]:
    """``host:port`` of each service's metrics, by job name (``modyard-<service>``)."""
    urls = dict(settings.service_urls())  # the JavaScript runner's included
    targets: dict[str, str] = {}
    for service, url in urls.items():
        parts = urlsplit(url)
        if parts.hostname:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            targets[f"modyard-{service}"] = f"{parts.hostname}:{port}"
    return targets


def render_config(targets: Mapping[str, str], rules: Path, *, interval: str = "15s") -> str:
    """prometheus.yml; JSON string literals are valid YAML double-quoted scalars."""
    lines = [
        "# Written by `modyard dev infra up --with prometheus`; changes are overwritten.",
        "global:",
        f"  scrape_interval: {interval}",
        f"  evaluation_interval: {interval}",
        "rule_files:",
        f"  - {json.dumps(str(rules))}",
        "scrape_configs:",
    ]
    for job, target in sorted(targets.items()):
        lines += [
            f"  - job_name: {json.dumps(job)}",
            "    metrics_path: /metrics",
            f"    static_configs: [{{targets: [{json.dumps(target)}]}}]",
        ]
    return "\n".join(lines) + "\n"


class Prometheus(Component):
    title = "Prometheus"
    key = "prometheus"
    required = False
    process_name = "prometheus"
    setting = "MODYARD_PROMETHEUS_URL"

    def __init__(
        self,
        run: RunLayout,
        settings: CommonSettings,
        *,
        port: int = PORT,
        scrape_interval: str = "15s",
    ) -> None:
        super().__init__(run, settings)
        self.port = port
        self.scrape_interval = scrape_interval

    @property
    def log_file(self) -> Path:
        return self.dir / "prometheus.log"

    @property
    def configured_url(self) -> str:
        return self.local_url

    @property
    def local_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def configured_reachable(self) -> bool:
        return http_status(f"{self.local_url}/-/ready") == 200

    def local_ready(self) -> bool:
        return self.configured_reachable()

    def cannot_start(self) -> str | None:
        if find_binary("prometheus") is None:
            return "prometheus not installed (scripts/bootstrap.sh installs Debian's package)"
        return None

    def config_text(self) -> str:
        return render_config(
            scrape_targets(self.settings),
            (self.run.root / RULES).resolve(),
            interval=self.scrape_interval,
        )

    def start(self, timeout: float) -> int:
        binary = find_binary("prometheus")
        assert binary is not None  # checked by cannot_start()
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        config = self.dir / "prometheus.yml"
        config.write_text(self.config_text(), encoding="utf-8")
        process = spawn_daemon(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                "--storage.tsdb.retention.time=2d",
                f"--web.listen-address={HOST}:{self.port}",
                # The histograms' exemplars (trace ids), scraped in the OpenMetrics format.
                "--enable-feature=exemplar-storage",
            ],
            log_path=self.log_file,
            cwd=self.dir,
        )
        write_pid(self.pid_file, process.pid)
        try:
            wait_until(
                self.local_ready,
                timeout=min(timeout, 60),
                what="Prometheus",
                log_path=self.log_file,
                died=lambda: process.poll() is not None,
            )
        except StartupError:
            terminate(process.pid, expect=None, timeout=10)
            remove_pid(self.pid_file)
            raise
        return process.pid

    def stop(self, pid: int, timeout: float) -> None:
        terminate(pid, expect=self.process_name, timeout=min(timeout, 15))
