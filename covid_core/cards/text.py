"""What every card shares: number formats and where its commands expect the data set."""

DATA_PLACEHOLDER = "../shared/data/coronahack-mini"


def pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def fixed(v, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"
