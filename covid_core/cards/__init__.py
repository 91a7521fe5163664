"""Model cards written from checkpoints: ``classifier`` and ``dae`` (denoiser)."""

#: Where the commands printed in the cards expect the data set.
DATA_PLACEHOLDER = "../shared/data/coronahack-mini"
