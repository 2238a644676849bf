"""Records of the Video-R1 formats: schema, loading, validation, mixing, statistics."""

from videor1.data.loading import (
    DataFileError,
    LoadResult,
    load_records,
    read_raw,
    resolve_media,
    write_records,
)
from videor1.data.records import (
    DATA_TYPES,
    CotRecord,
    EvalRecord,
    Record,
    RecordError,
    option_letter,
    option_text,
)

__all__ = [
    "DATA_TYPES",
    "CotRecord",
    "DataFileError",
    "EvalRecord",
    "LoadResult",
    "Record",
    "RecordError",
    "load_records",
    "option_letter",
    "option_text",
    "read_raw",
    "resolve_media",
    "write_records",
]
