"""Generate the Go code of KFP's `pipelinespec` and `kubernetesplatform` packages from the
FileDescriptorProtos embedded in PyPI's kfp-pipeline-spec and kfp-kubernetes wheels.

Why: the KFP API server's module (github.com/kubeflow/pipelines at 2.14.3) replaces its `api` and
`kubernetes_platform` modules with folders of its own repository, which its module zip does not
carry, and the Go module proxy serves neither at a matching version. The wheels of the same
release carry the same .proto files, serialized. Running protoc-gen-go on them gives the Go code
upstream generated (upstream used protoc-gen-go v1.36.6 too; comments are absent because the
wheels' descriptors carry no source info).

The descriptors are read with `ast` from the wheels' `*_pb2.py` (not imported: those files demand
a newer protobuf runtime than kfkit's environment has).

    python generate_go.py --wheel A.whl --wheel B.whl --plugin bin/protoc-gen-go --out DIR

writes DIR/github.com/kubeflow/pipelines/{api/v2alpha1/go/pipelinespec/pipeline_spec.pb.go,
kubernetes_platform/go/kubernetesplatform/kubernetes_executor_config.pb.go}.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import zipfile
from pathlib import Path

from google.protobuf import any_pb2, descriptor_pb2, duration_pb2, struct_pb2
from google.protobuf.compiler import plugin_pb2
from google.rpc import status_pb2

# The generated module inside each wheel, in dependency order (kubernetes_executor_config.proto
# imports pipeline_spec.proto).
GENERATED_MODULES = (
    "kfp/pipeline_spec/pipeline_spec_pb2.py",
    "kfp/kubernetes/kubernetes_executor_config_pb2.py",
)
# google/rpc/status.proto's Go package (googleapis' own option names the genproto path).
STATUS_GO_PACKAGE = "google.golang.org/genproto/googleapis/rpc/status;status"


def serialized_descriptor(source: str, where: str) -> bytes:
    """The bytes passed to `AddSerializedFile(...)` in a generated `_pb2.py`."""
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "AddSerializedFile"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, bytes)
        ):
            return node.args[0].value
    raise SystemExit(f"generate_go.py: no AddSerializedFile(b'...') in {where}")


def wheel_descriptors(wheels: list[Path]) -> list[descriptor_pb2.FileDescriptorProto]:
    """The FileDescriptorProtos of GENERATED_MODULES, found across the given wheels."""
    found: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for module in GENERATED_MODULES:
                if module in archive.namelist():
                    proto = descriptor_pb2.FileDescriptorProto()
                    proto.ParseFromString(
                        serialized_descriptor(archive.read(module).decode(), f"{wheel}!{module}")
                    )
                    found[module] = proto
    missing = [module for module in GENERATED_MODULES if module not in found]
    if missing:
        raise SystemExit(f"generate_go.py: {', '.join(missing)} in none of {', '.join(map(str, wheels))}")
    return [found[module] for module in GENERATED_MODULES]


def dependency_descriptors() -> list[descriptor_pb2.FileDescriptorProto]:
    """google/protobuf/{any,duration,struct}.proto and google/rpc/status.proto, from the Python
    packages' own descriptors."""
    protos = []
    for module in (any_pb2, duration_pb2, struct_pb2, status_pb2):
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        protos.append(proto)
    # The Python package's copy of status.proto may lack go_package; protoc-gen-go needs it.
    protos[-1].options.go_package = STATUS_GO_PACKAGE
    return protos


def generate(wheels: list[Path], plugin: Path, out: Path) -> list[Path]:
    """Run protoc-gen-go once per generated file and write what it answers under `out`."""
    generated = wheel_descriptors(wheels)
    written = []
    for target in generated:
        request = plugin_pb2.CodeGeneratorRequest()
        request.proto_file.extend(dependency_descriptors() + generated)
        request.file_to_generate.append(target.name)
        request.parameter = "paths=import"
        proc = subprocess.run(
            [str(plugin)], input=request.SerializeToString(), capture_output=True, check=False
        )
        if proc.returncode != 0:
            detail = proc.stderr.decode().strip()
            raise SystemExit(f"generate_go.py: {plugin} failed on {target.name}: {detail}")
        response = plugin_pb2.CodeGeneratorResponse.FromString(proc.stdout)
        if response.error:
            raise SystemExit(f"generate_go.py: {plugin} refused {target.name}: {response.error}")
        for file in response.file:
            path = out / file.name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(file.content)
            written.append(path)
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, action="append", required=True)
    parser.add_argument("--plugin", type=Path, required=True, help="the protoc-gen-go binary")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    for path in generate(args.wheel, args.plugin, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
