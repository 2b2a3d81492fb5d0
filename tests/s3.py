"""moto's standalone S3 server on loopback, with a bucket: for the object-storage tests and `bench/export.py --s3`."""
import logging
import os
from contextlib import contextmanager

AWS_ENV = {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret", "AWS_DEFAULT_REGION": "us-east-1"}


@contextmanager
def s3_server_on_loopback(bucket: str):
    """Start the server on a free loopback port with `bucket` made and test credentials in os.environ (put back
    after); yields its endpoint URL."""
    import boto3
    from moto.server import ThreadedMotoServer

    saved = {key: os.environ.get(key) for key in AWS_ENV}
    os.environ.update(AWS_ENV)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
