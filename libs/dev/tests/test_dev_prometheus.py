"""``modyard dev infra up --with prometheus``: Debian's Prometheus started on loopback, scraping
the services' ``/metrics`` with jobs named ``modyard-<service>`` and deploy/monitoring's alert
rules loaded, and stopped by PID."""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from modyard.common.settings import CommonSettings
from modyard.dev.component import State
from modyard.dev.paths import RunLayout
from modyard.dev.processes import is_running, read_pid
from modyard.dev.prometheus import RULES, Prometheus, render_config, scrape_targets

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Metrics(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'# TYPE modyard_dependency_up gauge\nmodyard_dependency_up{service="registry",dependency="broker"} 0\n'
        self.send_response(200 if self.path == "/metrics" else 404)
        self.send_header("content-type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        return


@pytest.fixture
def metrics_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_every_service_is_a_job_named_after_it_with_the_alert_rules() -> None:
    settings = CommonSettings(
        runtime_url="http://127.0.0.1:18003", gateway_url="http://127.0.0.1:18004"
    )
    targets = scrape_targets(settings)
    assert targets["modyard-runtime"] == "127.0.0.1:18003"
    assert targets["modyard-appcell-gateway"] == "127.0.0.1:18004"
    assert {"modyard-registry", "modyard-installer", "modyard-deployer"} <= set(targets)
    config = render_config(targets, ROOT / RULES)
    assert f'  - "{ROOT / RULES}"' in config
    assert 'job_name: "modyard-runtime"' in config


def test_infra_up_with_prometheus_scrapes_the_services_and_loads_the_alerts(
    tmp_path: Path, metrics_server: str
) -> None:
    assert shutil.which("prometheus"), "run scripts/bootstrap.sh (Debian's prometheus package)"
    rules = tmp_path / RULES
    rules.parent.mkdir(parents=True)
    shutil.copy(ROOT / RULES, rules)
    settings = CommonSettings(registry_url=metrics_server)
    prometheus = Prometheus(RunLayout(tmp_path), settings, port=free_port(), scrape_interval="1s")
    report = prometheus.up(timeout=60)
    assert report.state is State.started, report.detail
    pid = read_pid(prometheus.pid_file)
    assert pid is not None
    try:
        api = f"{prometheus.local_url}/api/v1"
        groups = httpx.get(f"{api}/rules", timeout=10).json()["data"]["groups"]
        assert "modyard-availability" in {group["name"] for group in groups}

        def registry_up() -> bool:
            answer = httpx.get(
                f"{api}/query", params={"query": 'up{job="modyard-registry"}'}, timeout=10
            ).json()["data"]["result"]
            return bool(answer) and answer[0]["value"][1] == "1"

        deadline = 120
        while not registry_up():
            deadline -= 1
            assert deadline > 0, prometheus.log_file.read_text()[-3000:]
            threading.Event().wait(0.5)
        # The readiness alert sees the scraped gauge (pending: its `for` is 5 minutes).
        alerts = httpx.get(f"{api}/alerts", timeout=10).json()["data"]["alerts"]
        pending = {(a["labels"]["alertname"], a["state"]) for a in alerts}
        while ("ModyardReadinessFailing", "pending") not in pending:
            deadline -= 1
            assert deadline > 0, pending
            threading.Event().wait(0.5)
            alerts = httpx.get(f"{api}/alerts", timeout=10).json()["data"]["alerts"]
            pending = {(a["labels"]["alertname"], a["state"]) for a in alerts}
    finally:
        stopped = prometheus.down(timeout=30)
    assert stopped.state is State.stopped
    assert not is_running(pid, "prometheus")
