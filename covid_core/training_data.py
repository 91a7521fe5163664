"""What a classifier was trained on: recorded in its checkpoint at training (key ``training_data``) and told in words
by the model card, the Diagnose page, the case report and the command line.

A model trained on the public collections this package is measured on (the sources of coronahack-mini's
provenance.csv) is described with what is known of them; a model trained on other films, a hospital's own say, is
described by its data set's name and sources, so that no page claims public collections for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath

from .stored_values import section, whole

#: What the sources of coronahack-mini's provenance.csv are, for a reader who has not read its SOURCES.md.
PUBLIC_SOURCES = {"kermany": "paediatric films, Guangzhou", "nih": "adult films, NIH Clinical Center",
                  "cohen": "adult films from the COVID-19 image collection of Cohen et al.",
                  "figure1": "adult films from the Figure 1 COVID-19 collection"}
#: The public data set's folder name; older checkpoints, which recorded no sources, are known by it.
PUBLIC_DATA_NAME = "coronahack-mini"
#: The source of a film that its data set does not name (covid_core.datasets).
UNKNOWN_SOURCE = "unknown"
#: Unreadable films a checkpoint names (it counts them all).
MAX_NAMED = 100


@dataclass(frozen=True)
class TrainingData:
    """name: the data folder's name ("" when unknown); layout: the layout it was read in ("" when not recorded);
    sources: films per named source over all splits ({} when none was recorded); public: from the public
    collections only; unreadable_n: films left out because they could not be read, the first of them named in
    ``unreadable``."""

    name: str
    layout: str
    sources: dict[str, int]
    public: bool
    unreadable_n: int = 0
    unreadable: tuple[str, ...] = ()

    def summary(self) -> str:
        """'coronahack-mini (coronahack layout; cohen 426, figure1 31, kermany 1387, nih 770)', or 'n/a'."""
        details = "; ".join(part for part in (f"{self.layout} layout" if self.layout else "",
                                              ", ".join(f"{s} {n}" for s, n in self.sources.items()),
                                              f"{self.unreadable_n} unreadable left out" if self.unreadable_n else "")
                            if part)
        return (self.name or "n/a") + (f" ({details})" if details else "")

    def label(self) -> str:
        """'"coronahack-mini"', or 'its training data' when the name is unknown: for sentences."""
        return f'"{self.name}"' if self.name else "its training data"


def training_data_record(root: str | Path, layout: str, table, unreadable: list[str] = ()) -> dict:
    """What a checkpoint stores of its data set: ``root`` read in ``layout``, ``table`` the films it used, and the
    names of the ``unreadable`` films left out (the first 100, and how many)."""
    sources = table["source"].astype(str).value_counts() if "source" in table.columns else {}
    record = {"name": Path(root).name, "layout": str(layout),
              "sources": {str(k): int(v) for k, v in sorted(dict(sources).items())}}
    if unreadable:
        record.update(unreadable_n=len(unreadable), unreadable=[str(n) for n in unreadable[:MAX_NAMED]])
    return record


def readable_training_films(dataset, table, config, skip_unreadable: bool, advice: str, progress: bool = True,
                            announce: bool = True):
    """(table, its images, what the checkpoint records of the data set: {"data_fingerprint", "training_data"}) for a
    training run on ``dataset`` (``table`` its films for the run, ``config`` their PreprocessConfig), through
    :func:`covid_core.cache.readable_films`; with ``announce``, the films left out are named in the run's log."""
    from .cache import readable_films, unreadable_list
    from .formatting import printable

    table, images, skipped = readable_films(table, config, skip_unreadable, advice, progress=progress)
    if skipped and announce:
        print(f"left out {printable(unreadable_list(skipped))}", flush=True)  # names: no terminal codes
    return table, images, {"data_fingerprint": dataset.fingerprint(),
                           "training_data": training_data_record(dataset.root, dataset.layout, table, skipped)}


def training_data(metadata: dict) -> TrainingData:
    """The data a checkpoint (its metadata dict) was trained on. Checkpoints from before the record: the name of the
    data folder in their training settings, no layout and no sources."""
    stored = section(metadata, "training_data")
    if stored:
        name, layout, counts = stored.get("name"), stored.get("layout"), section(stored, "sources")
    else:
        data = section(metadata, "train_config").get("data")
        name, layout, counts = PurePath(data).name if isinstance(data, str) else "", "", {}
    sources = {str(k): n for k, v in counts.items() if k != UNKNOWN_SOURCE and (n := whole(v)) is not None}
    name, layout = (name if isinstance(name, str) else ""), (layout if isinstance(layout, str) else "")
    public = (set(sources) <= set(PUBLIC_SOURCES) and UNKNOWN_SOURCE not in counts) if sources else (
        name == PUBLIC_DATA_NAME and not counts)
    names = stored.get("unreadable")
    unreadable = tuple(n for n in names if isinstance(n, str)) if isinstance(names, list) else ()
    return TrainingData(name, layout, sources, public, whole(stored.get("unreadable_n")) or len(unreadable),
                        unreadable)


PUBLIC_NOT_VALIDATED = ("Not validated at your hospital: the measured figures on this page come from public "
                        "collections (children from one hospital, adults from one US hospital and COVID-19 films "
                        "from many publications), not from films like yours. Published COVID-19 detectors lost most "
                        "of their accuracy at new hospitals.")


def not_validated_statement(metadata: dict) -> str:
    """Why the figures shown beside a verdict may not hold at the user's hospital, before a site file validates the
    model there: where they were measured."""
    data = training_data(metadata)
    if data.public:
        return PUBLIC_NOT_VALIDATED
    return (f"Not validated at your hospital: the measured figures on this page come from the TEST films of "
            f"{data.label()}, the data set this model was trained on, not from a validation on your hospital's own "
            "films. Published COVID-19 detectors lost most of their accuracy at new hospitals.")
