"""Number formats shared by cards, verdict sentences, reports and the app."""


def pct(v) -> str:
    """0.8765 -> "87.6%"; None -> "n/a"."""
    return "n/a" if v is None else f"{100 * float(v):.1f}%"


def fixed(v, digits: int = 3) -> str:
    """0.87654 -> "0.877"; None -> "n/a"."""
    return "n/a" if v is None else f"{v:.{digits}f}"
