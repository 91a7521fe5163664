"""Where the cards' commands expect the data set."""

DATA_PLACEHOLDER = "../shared/data/coronahack-mini"
