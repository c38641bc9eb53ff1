"""An independent Mapbox Vector Tile decoder for tests: the spec's ``vector_tile.proto`` (2.1)
built as a protobuf descriptor and parsed by Google's protobuf runtime, then the geometry
commands turned back into coordinates. Nothing here shares code with ``feeds.tiles``."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto


def _schema() -> Any:
    file = descriptor_pb2.FileDescriptorProto(
        name="test_vector_tile.proto", package="test_vector_tile", syntax="proto2"
    )
    tile = file.message_type.add(name="Tile")
    value = tile.nested_type.add(name="Value")
    for number, name, kind in [
        (1, "string_value", _F.TYPE_STRING),
        (2, "float_value", _F.TYPE_FLOAT),
        (3, "double_value", _F.TYPE_DOUBLE),
        (4, "int_value", _F.TYPE_INT64),
        (5, "uint_value", _F.TYPE_UINT64),
        (6, "sint_value", _F.TYPE_SINT64),
        (7, "bool_value", _F.TYPE_BOOL),
    ]:
        value.field.add(name=name, number=number, type=kind, label=_F.LABEL_OPTIONAL)
    feature = tile.nested_type.add(name="Feature")
    feature.field.add(name="id", number=1, type=_F.TYPE_UINT64, label=_F.LABEL_OPTIONAL)
    feature.field.add(name="tags", number=2, type=_F.TYPE_UINT32, label=_F.LABEL_REPEATED)
    feature.field.add(name="type", number=3, type=_F.TYPE_UINT32, label=_F.LABEL_OPTIONAL)
    feature.field.add(name="geometry", number=4, type=_F.TYPE_UINT32, label=_F.LABEL_REPEATED)
    layer = tile.nested_type.add(name="Layer")
    layer.field.add(name="version", number=15, type=_F.TYPE_UINT32, label=_F.LABEL_REQUIRED)
    layer.field.add(name="name", number=1, type=_F.TYPE_STRING, label=_F.LABEL_REQUIRED)
    layer.field.add(
        name="features",
        number=2,
        type=_F.TYPE_MESSAGE,
        type_name=".test_vector_tile.Tile.Feature",
        label=_F.LABEL_REPEATED,
    )
    layer.field.add(name="keys", number=3, type=_F.TYPE_STRING, label=_F.LABEL_REPEATED)
    layer.field.add(
        name="values",
        number=4,
        type=_F.TYPE_MESSAGE,
        type_name=".test_vector_tile.Tile.Value",
        label=_F.LABEL_REPEATED,
    )
    layer.field.add(name="extent", number=5, type=_F.TYPE_UINT32, label=_F.LABEL_OPTIONAL)
    tile.field.add(
        name="layers",
        number=3,
        type=_F.TYPE_MESSAGE,
        type_name=".test_vector_tile.Tile.Layer",
        label=_F.LABEL_REPEATED,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("test_vector_tile.Tile"))


TILE = _schema()
GEOM_TYPES = {1: "point", 2: "line", 3: "polygon"}


@dataclass
class Feature:
    kind: str  # point | line | polygon
    properties: dict[str, str]
    parts: list[list[tuple[int, int]]]  # points, line parts or rings, in tile units


@dataclass
class Layer:
    name: str
    version: int
    extent: int
    features: list[Feature]


def _unzigzag(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


def decode_commands(commands: list[int]) -> list[list[tuple[int, int]]]:
    """Geometry commands → parts of absolute coordinates (a ClosePath repeats the start)."""
    parts: list[list[tuple[int, int]]] = []
    x = y = 0
    i = 0
    while i < len(commands):
        cid, count = commands[i] & 7, commands[i] >> 3
        i += 1
        if cid == 7:
            parts[-1].append(parts[-1][0])
            continue
        for _ in range(count):
            x += _unzigzag(commands[i])
            y += _unzigzag(commands[i + 1])
            i += 2
            if cid == 1:
                parts.append([(x, y)])
            elif cid == 2:
                parts[-1].append((x, y))
            else:
                raise ValueError(f"unknown command {cid}")
    return parts


def decode_tile(data: bytes) -> dict[str, Layer]:
    """Layers of a (decompressed) MVT by name."""
    tile = TILE()
    tile.ParseFromString(data)
    out: dict[str, Layer] = {}
    for layer in tile.layers:
        values = [v.string_value for v in layer.values]
        features = []
        for f in layer.features:
            tags = list(f.tags)
            props = {layer.keys[tags[i]]: values[tags[i + 1]] for i in range(0, len(tags), 2)}
            features.append(Feature(GEOM_TYPES[f.type], props, decode_commands(list(f.geometry))))
        out[layer.name] = Layer(layer.name, layer.version, layer.extent, features)
    return out


def ring_area2(ring: list[tuple[int, int]]) -> int:
    """Twice the surveyor's-formula area of a closed ring (tile units, y down)."""
    return sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in itertools.pairwise(ring))
