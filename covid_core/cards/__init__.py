"""Model cards written from checkpoints: ``classifier`` and ``dae`` (denoiser)."""

from pathlib import PurePath

from ..training_data import PUBLIC_DATA_NAME

#: Where the commands printed in the cards expect the public data set.
DATA_PLACEHOLDER = "../shared/data/coronahack-mini"


def data_argument(train_config: dict) -> str:
    """The ``--data`` of a card's command that reproduces a model: the public data set's usual place for a model
    trained on it (wherever it was on the machine that trained it), else the folder it was trained on."""
    data = train_config.get("data")
    if not isinstance(data, str) or not data:
        return "DATA_DIR"
    return DATA_PLACEHOLDER if PurePath(data).name == PUBLIC_DATA_NAME else data
