"""`twotower serve` in its own process for the serving benchmark: started on free loopback
ports, waited for until its model is AVAILABLE, its /metrics read to count errors."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Optional

from benchmarks import common
from twotower.errors import TwoTowerError

_REQUESTS = re.compile(r'^twotower_requests_total\{protocol="(?P<protocol>\w+)",'
                       r'method="Predict",model="[^"]*",code="(?P<code>\w+)"\} (?P<count>\d+)$',
                       re.MULTILINE)


def predict_counts(metrics_text: str) -> dict[tuple[str, str], int]:
    """(protocol, status code) -> Predict requests answered, from /metrics text."""
    return {(match["protocol"], match["code"]): int(match["count"])
            for match in _REQUESTS.finditer(metrics_text)}


class ServerProcess:
    """A model server subprocess serving one model named `twotower`."""

    def __init__(self, base_path: str, batching_parameters_file: Optional[str],
                 grpc_frontend: Optional[str] = None) -> None:
        """Starts the server and waits until its latest version is AVAILABLE.

        Args:
          base_path: The model base path.
          batching_parameters_file: Turns batching on with this TF Serving parameters file.
          grpc_frontend: `twotower serve --grpc_frontend`; None keeps the server's default.

        Raises:
          TwoTowerError: the server exits or is not ready in 180 s; its log is quoted.
        """
        self.grpc_port, self.rest_port = common.free_ports(2)
        command = [os.path.join(os.path.dirname(sys.executable), "twotower"), "serve",
                   "--model_name", "twotower", "--model_base_path", base_path,
                   "--port", str(self.grpc_port), "--rest_api_port", str(self.rest_port),
                   "--file_system_poll_wait_seconds", "0.5", "--grpc_threads", "32"]
        if grpc_frontend:
            command += ["--grpc_frontend", grpc_frontend]
        if batching_parameters_file:
            command += ["--enable_batching", "--batching_parameters_file",
                        batching_parameters_file]
        self._log = tempfile.NamedTemporaryFile("w+", suffix=".log")  # pylint: disable=consider-using-with
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)  # pylint: disable=consider-using-with
        self._wait_ready(180)

    def _log_tail(self) -> str:
        self._log.flush()
        with open(self._log.name) as f:
            return f.read()[-1500:]

    def _wait_ready(self, seconds: float) -> None:
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise TwoTowerError(f"the model server exited ({self.process.returncode}):\n"
                                    f"{self._log_tail()}")
            if self.served_version() is not None:
                return
            time.sleep(0.5)
        tail = self._log_tail()
        self.stop()
        raise TwoTowerError(f"the model server was not ready in {seconds:.0f} s:\n{tail}")

    def _get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.rest_port}{path}",
                                    timeout=10) as reply:
            return reply.read().decode()

    def served_version(self) -> Optional[int]:
        """The AVAILABLE version, or None while none is."""
        try:
            statuses = json.loads(self._get("/v1/models/twotower"))["model_version_status"]
        except OSError:
            return None
        available = [int(s["version"]) for s in statuses if s["state"] == "AVAILABLE"]
        return available[0] if available else None

    def failed_versions(self) -> list[int]:
        """Versions that ended with a load error."""
        statuses = json.loads(self._get("/v1/models/twotower"))["model_version_status"]
        return [int(s["version"]) for s in statuses if s["status"]["error_message"]]

    def predict_counts(self) -> dict[tuple[str, str], int]:
        return predict_counts(self._get("/metrics"))

    def metrics(self) -> str:
        return self._get("/metrics")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
