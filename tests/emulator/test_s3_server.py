"""The standalone S3 server counts requests by kind and the bytes it sends."""

from __future__ import annotations

import socket

import s3fs

from xasync.emulator import S3Server


def test_counts_by_kind_and_bytes():
    with S3Server() as s3:
        assert s3.endpoint_url.startswith("http://127.0.0.1:")
        s3.create_bucket("counted")
        client = s3.client()
        s3.reset()
        client.put_object(Bucket="counted", Key="a.bin", Body=b"x" * 1000)
        client.head_object(Bucket="counted", Key="a.bin")
        assert client.get_object(Bucket="counted", Key="a.bin")["Body"].read() == b"x" * 1000
        part = client.get_object(Bucket="counted", Key="a.bin", Range="bytes=0-99")
        assert len(part["Body"].read()) == 100
        client.list_objects_v2(Bucket="counted")
        stats = s3.stats
        assert {k: stats[k] for k in ("put", "head", "get", "get_ranged", "list")} == dict.fromkeys(
            ("put", "head", "get", "get_ranged", "list"), 1
        )
        assert 1100 <= stats["bytes_sent"] < 1100 + 2000  # + the small LIST XML
        fs = s3fs.S3FileSystem(**s3.storage_options, skip_instance_cache=True)
        assert fs.cat("counted/a.bin") == b"x" * 1000
        s3.reset()
        assert s3.stats["requests"] == 0
        port = int(s3.endpoint_url.rsplit(":", 1)[1])
    # The port is released on stop.
    with socket.socket() as sock:
        # as any server would: closed client connections may linger in TIME_WAIT
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
