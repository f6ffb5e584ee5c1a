"""``process_large_dataset``: a dataset from Postgres, page by page, with progress."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from celeryref.celery_app import app
from celeryref.domain import data_processing as recs
from celeryref.domain import datasets
from celeryref.errors import InvalidArguments
from celeryref.observability.progress import PROGRESS, progress_meta

#: Rejections kept in the result (the count is always complete).
MAX_REPORTED_REJECTIONS = 20


@dataclass(frozen=True)
class Options:
    """How ``process_large_dataset`` treats records."""

    #: Reject (and report) invalid records; off: records are trusted, a bad one fails.
    validate: bool = True
    #: Clean text fields and categories before analysis.
    normalize: bool = True
    #: Records read per page (and per progress update).
    batch_size: int = 500

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> Options:
        raw = dict(raw or {})
        unknown = set(raw) - {"validate", "normalize", "batch_size"}
        if unknown:
            raise InvalidArguments(f"unknown options: {sorted(unknown)}")
        options = cls(**raw)
        if not isinstance(options.validate, bool) or not isinstance(options.normalize, bool):
            raise InvalidArguments("validate and normalize must be true or false")
        size = options.batch_size
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 10_000:
            raise InvalidArguments("batch_size must be an integer in 1..10000")
        return options


@app.task(bind=True)
def process_large_dataset(
    self: Any, dataset: str, options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Validate, normalize and analyze every record of ``dataset``; store the result in
    ``dataset_results``. Reports ``PROGRESS`` after each page."""
    name = datasets.check_name(dataset)
    opts = Options.from_dict(options)
    total = datasets.count(name)
    if total == 0:
        raise InvalidArguments(f"dataset {name!r} has no records")
    analysis = recs.Analysis()
    rejections: list[dict[str, Any]] = []
    rejected = processed = 0
    for page in datasets.pages(name, opts.batch_size):
        if opts.validate:
            valid, bad = recs.validate(page)
            rejected += len(bad)
            room = MAX_REPORTED_REJECTIONS - len(rejections)
            rejections += [{**r, "index": r["index"] + processed} for r in bad[:room]]
        else:
            valid = page
            for record in page:
                if (problem := recs.record_problem(record)) is not None:
                    raise InvalidArguments(f"record {processed + 1}: {problem}")
        for record in valid:
            analysis.add(recs.clean_record(record) if opts.normalize else record)
        processed += len(page)
        seen = max(total, processed)  # records added while it runs count too
        meta = progress_meta(processed, seen, f"{processed} of {seen} records")
        self.update_state(state=PROGRESS, meta=meta)
    result = {
        "dataset": name,
        "processed": processed,
        "valid": processed - rejected,
        "rejected": rejected,
        "rejections": rejections,
        "analysis": analysis.to_dict(),
    }
    result_id = datasets.store_result(name, str(self.request.id), asdict(opts), result)
    return {**result, "result_id": result_id}
