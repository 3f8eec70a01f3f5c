"""The `served` fixture: a model server over a tiny SavedModel, for the e2e server tests,
once per gRPC front end (--grpc_frontend)."""
import grpc
import pytest

from serving import server as server_lib
from serving.flags import GRPC_FRONTENDS, ServerOptions
from serving.tests import fixtures


@pytest.fixture(name="served", params=GRPC_FRONTENDS)
def fixture_served(request, tmp_path):
    base = str(tmp_path / "models" / "twotower")
    fixtures.write_version(base, 1, seed=1, root=str(tmp_path))
    server = server_lib.ModelServer(ServerOptions(
        models={"twotower": base}, port=0, rest_api_port=0, poll_seconds=0.2, max_batch_size=8,
        grpc_frontend=request.param))
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    yield server, channel, base, tmp_path
    channel.close()
    server.stop()
