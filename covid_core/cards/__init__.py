"""Model cards written from checkpoints: ``classifier`` and ``dae`` (denoiser)."""

from pathlib import PurePath

from ..formatting import code_span
from ..training_data import PUBLIC_DATA_NAME, TrainingData

#: Where the commands printed in the cards expect the public data set.
DATA_PLACEHOLDER = "../shared/data/coronahack-mini"


def data_arguments(train_config: dict) -> list[str]:
    """What a card's command that reproduces a model says of its data: ``--data``, the public data set's usual place
    for a model trained on it (wherever it was on the machine that trained it), else the folder it was trained on;
    and ``--skip-unreadable`` if the run left unreadable films out (without it, the same data stops the run)."""
    data = train_config.get("data")
    if not isinstance(data, str) or not data:
        data = "DATA_DIR"
    elif PurePath(data).name == PUBLIC_DATA_NAME:
        data = DATA_PLACEHOLDER
    return ["--data", data] + (["--skip-unreadable"] if train_config.get("skip_unreadable") is True else [])


def unreadable_lines(data: TrainingData) -> list[str]:
    """The films a run left out because they could not be read, for a card's data section."""
    if not data.unreadable_n:
        return []
    return [f"- Left out: {data.unreadable_n} film(s) that could not be read ("
            + ", ".join(code_span(n) for n in data.unreadable[:10])
            + (", ..." if data.unreadable_n > 10 else "") + "); no figure here counts them"]
