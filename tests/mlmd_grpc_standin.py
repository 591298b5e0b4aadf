"""A stand-in for KFP's ``metadata-grpc-service`` on 127.0.0.1.

KFP runs ML Metadata's C++ gRPC server; no build of it installs here. This stand-in serves
the same ``ml_metadata.MetadataStoreService`` over real gRPC and answers every call with
ml-metadata's own store code (the library's in-process binding, on a SQLite file), so a
client using ``grpc://`` exercises exactly the wire protocol a cluster's service speaks.
"""

from __future__ import annotations

from concurrent import futures

import grpc
from ml_metadata import errors
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2, metadata_store_service_pb2

from kfkit.net import free_port

SERVICE = metadata_store_service_pb2.DESCRIPTOR.services_by_name["MetadataStoreService"]


class MlmdGrpcStandIn:
    def __init__(self, sqlite_path: str) -> None:
        config = metadata_store_pb2.ConnectionConfig()
        config.sqlite.filename_uri = sqlite_path
        config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        self.backing = metadata_store.MetadataStore(config)
        self.port = 0
        self.server: grpc.Server | None = None

    def _handler(self, method):
        request_class = metadata_store_service_pb2.__dict__[method.input_type.name]
        response_class = metadata_store_service_pb2.__dict__[method.output_type.name]

        def handle(request, context):
            response = response_class()
            try:
                # The library's own dispatch for in-process stores: the same C++ code the
                # real server runs for this request.
                self.backing._call_method(method.name, request, response)
            except errors.StatusError as exc:
                context.abort(grpc.StatusCode(_status(exc.error_code)), str(exc))
            return response

        return grpc.unary_unary_rpc_method_handler(
            handle,
            request_deserializer=request_class.FromString,
            response_serializer=response_class.SerializeToString,
        )

    def start(self) -> str:
        # One worker: the in-process SQLite store is not for concurrent use.
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
        handlers = {m.name: self._handler(m) for m in SERVICE.methods}
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),)
        )
        self.port = free_port()
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        self.server.start()
        return f"grpc://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(grace=1).wait()


def _status(code: int) -> tuple:
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status.value
    return grpc.StatusCode.UNKNOWN.value
