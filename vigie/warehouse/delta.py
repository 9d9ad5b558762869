"""A Delta table of a local Spark warehouse (a table folder with a `_delta_log`), read without delta-spark (whose
jars Spark would fetch from Maven Central at start): the transaction log is resolved by delta-rs (the
`deltalake` wheel), which names the data files of the table's current version and their partition values;
Spark reads those files as Parquet under the table's own schema. Read as bare Parquet, a Delta folder would
count the files its log removed (an overwritten table twice).

Features that change how a data file maps to rows (deletion vectors, column mapping, type widening...) cannot be
read this way: such a table is an error naming the feature, never read as if it had none."""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..errors import ObservationError
from ..extras import missing
from .spark import _line, literal_path

# reader features that leave each data file's rows and column names as they are: the log's business only
HARMLESS_FEATURES = {"timestampNtz", "v2Checkpoint", "vacuumProtocolCheck"}


def delta_frame(spark, folder: Path):
    """The current version of the Delta table at `folder` as a Spark DataFrame; ObservationError (one line,
    naming the table) when it cannot be read faithfully."""
    try:
        from deltalake import DeltaTable
    except ImportError:
        raise ObservationError(f"{folder.name} is a Delta table and {missing('deltalake', 'spark')}") from None
    import pyarrow as pa
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructType
    try:
        table = DeltaTable(str(folder.resolve()))
        protocol, metadata = table.protocol(), table.metadata()
        unsupported = sorted(set(protocol.reader_features or ()) - HARMLESS_FEATURES)
        mapping = metadata.configuration.get("delta.columnMapping.mode", "none")
        if unsupported or mapping != "none":
            features = unsupported + ([f"column mapping ({mapping})"] if mapping != "none" else [])
            raise ObservationError(f"{folder.name} is a Delta table using {', '.join(features)}, which vigie "
                                   "does not read (its files would give other rows than the table's): not read")
        schema = StructType.fromJson(json.loads(table.schema().to_json()))
        partitions = list(metadata.partition_columns)
        actions = pa.table(table.get_add_actions(flatten=False))
        files = actions.select(["path", *(["partition"] if partitions else [])]).to_pylist()
    except (ObservationError, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - delta-rs raises its own classes, a Rust panic a BaseException
        raise ObservationError(f"cannot read the Delta log of {folder.name}: {_line(exc)}") from None
    if not files:
        return spark.createDataFrame([], schema)
    # Delta keeps partition values in its log, not in the files
    values = [tuple(_text((a.get("partition") or {}).get(name)) for name in partitions) for a in files]
    paths = [_data_file(folder, a["path"]) for a in files]
    if all(_hive_path(folder, path, partitions, v) for path, v in zip(paths, values, strict=True)):
        # the usual layout (name=value folders, as Spark and delta-rs write): one read, Spark taking each
        # partition's values from its folder's name, shown above to be the log's
        return (spark.read.schema(schema).option("basePath", str(folder.resolve()))
                .parquet(*map(literal_path, paths)).select(*schema.fieldNames()))
    # else the files of one partition read together, its values as constants of the schema's types: a union
    # per partition, which Spark plans slowly (1,000 partitions: 28 s per query)
    stored = StructType([f for f in schema.fields if f.name not in partitions])
    groups: dict[tuple, list[str]] = {}
    for path, value in zip(paths, values, strict=True):
        groups.setdefault(value, []).append(literal_path(path))
    frame = None
    for group, group_paths in groups.items():
        part = spark.read.schema(stored).parquet(*group_paths)
        for name, value in zip(partitions, group, strict=True):
            part = part.withColumn(name, F.lit(value).cast(schema[name].dataType))
        part = part.select(*schema.fieldNames())
        frame = part if frame is None else frame.unionByName(part)
    return frame


def _hive_path(folder: Path, path: str, partitions: list[str], values: tuple) -> bool:
    """Whether the file's folders below the table are name=value for each partition column, in order, with
    the log's values (Hive's escapes undone; null as __HIVE_DEFAULT_PARTITION__)."""
    try:
        folders = Path(path).relative_to(folder.resolve()).parts[:-1]
    except ValueError:
        return False
    expected = tuple(f"{name}=" for name in partitions)
    if len(folders) != len(partitions) or not all(f.startswith(e) for f, e in zip(folders, expected, strict=True)):
        return False
    # as Spark reads them: each %XX one character (a UTF-8 "é", %C3%A9, is two), so such a folder is not taken
    seen = tuple(None if f[len(e):] == "__HIVE_DEFAULT_PARTITION__" else unquote(f[len(e):], encoding="latin-1")
                 for f, e in zip(folders, expected, strict=True))
    return seen == values


def _data_file(folder: Path, path: str) -> str:
    """A data file's path on disk: the log holds it URL-encoded, relative to the table (a file:// URI when
    the table was cloned); a file elsewhere (s3://...) is not a local warehouse's."""
    parsed = urlparse(path)
    if not parsed.scheme:
        return str(folder.resolve() / unquote(path))
    if parsed.scheme == "file":
        return unquote(parsed.path)
    raise ObservationError(f"the Delta table {folder.name} has data files outside the folder ({parsed.scheme}://...): "
                           "not read")


def _text(value) -> str | None:
    return None if value is None else str(value)

