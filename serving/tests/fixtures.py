"""Tiny retrieval SavedModels for server tests: no training, same signatures as the
IndexBuilder's (a hashed-user query tower + exact top-K over a fixed catalogue)."""
from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from components.index_builder import retrieval_model
from twotower import warmup
from twotower import versions

ITEMS = [f"i{i}" for i in range(50)]
DIM = 8
K = 5


SPECS = {"user_id": tf.TensorSpec([None], tf.string, name="user_id"),
         "age": tf.TensorSpec([None], tf.int64, name="age"),
         "gender": tf.TensorSpec([None], tf.string, name="gender"),
         "occupation": tf.TensorSpec([None], tf.string, name="occupation"),
         "zip": tf.TensorSpec([None], tf.string, name="zip")}


class _HashTower(tf.Module):
    """user_id -> a fixed random unit vector per hash bucket (seeded by `seed`)."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        table = np.random.default_rng(seed).normal(size=(64, DIM)).astype(np.float32)
        self.table = tf.Variable(table / np.linalg.norm(table, axis=1, keepdims=True))

    @tf.function(input_signature=[SPECS])
    def serve(self, features):
        bucket = tf.strings.to_hash_bucket_fast(features["user_id"], 64)
        shift = tf.cast(features["age"], tf.float32)[:, tf.newaxis] * 0.0
        return {"embedding": tf.gather(self.table, bucket) + shift}


def write_version(base_path: str, version: int, seed: int, root: str) -> str:
    """Publishes one version (k = 5 of 50 items) under base_path; returns its folder."""
    tower_dir = os.path.join(root, f"tower-{seed}")
    tower = _HashTower(seed)
    tf.saved_model.save(tower, tower_dir, signatures={"serving_default": tower.serve})
    items = np.random.default_rng(seed + 1).normal(size=(len(ITEMS), DIM)).astype(np.float32)
    model = retrieval_model.RetrievalModel(tower_dir, ITEMS, retrieval_model.ExactSearch(items), K,
                                           max_k=20)
    staging = os.path.join(root, f"model-{seed}-{version}")
    model.save(staging)
    warmup.write(staging, "twotower", "serving_default", [query(["u1", "u2"])])
    return versions.publish(staging, base_path, version)


def query(users: list[str]) -> dict[str, np.ndarray]:
    """Raw query features for some users."""
    n = len(users)
    return {"user_id": np.array(users, dtype=object), "age": np.full(n, 30, np.int64),
            "gender": np.array(["F"] * n, dtype=object),
            "occupation": np.array(["writer"] * n, dtype=object),
            "zip": np.array(["12345"] * n, dtype=object)}


def self_signed(tmp_path) -> tuple[str, str]:
    """(certificate file, key file): a self-signed EC certificate for localhost and
    127.0.0.1."""
    import datetime  # pylint: disable=import-outside-toplevel
    import ipaddress  # pylint: disable=import-outside-toplevel
    from cryptography import x509  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives import hashes, serialization  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives.asymmetric import ec  # pylint: disable=import-outside-toplevel
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


def tls_server(tmp_path, frontend: str, **options):
    """A started model server over one tiny version with TLS on both ports (stop it after
    use); (server, certificate file)."""
    from serving import server as server_lib  # pylint: disable=import-outside-toplevel
    from serving.flags import ServerOptions  # pylint: disable=import-outside-toplevel
    base = str(tmp_path / "models" / "twotower")
    write_version(base, 1, seed=1, root=str(tmp_path))
    cert_file, key_file = self_signed(tmp_path)
    server = server_lib.ModelServer(ServerOptions(
        models={"twotower": base}, port=0, rest_api_port=0, ssl_cert_file=cert_file,
        ssl_key_file=key_file, grpc_frontend=frontend, **options))
    server.start()
    return server, cert_file
