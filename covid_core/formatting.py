"""Number formats shared by cards, verdict sentences, reports and the app, and plain text inside Markdown."""

import re


def pct(v) -> str:
    """0.8765 -> "87.6%"; None -> "n/a"."""
    return "n/a" if v is None else f"{100 * float(v):.1f}%"


def probability_pcts(*values: float) -> list[str]:
    """Probabilities as percents, with the fewest decimals (0 to 2) at which none that is not certain reads as
    certain (0% or 100%) and no two that differ read alike: 0.35 -> "35%", 0.995 -> "99.5%", (0.776, 0.784) ->
    ("77.6%", "78.4%"), not ("78%", "78%"); closer to certainty than 2 decimals tell, "<0.01%" or ">99.99%"."""
    values = [float(v) for v in values]
    for digits in range(3):
        texts = [f"{100 * v:.{digits}f}" for v in values]
        certain = any(0 < v < 1 and float(t) in (0, 100) for v, t in zip(values, texts))
        if not certain and len(set(texts)) == len(set(values)):
            break
    limits = {"0.00": "<0.01", "100.00": ">99.99"}
    return [(limits.get(t, t) if 0 < v < 1 else t) + "%" for v, t in zip(values, texts)]


def fixed(v, digits: int = 3) -> str:
    """0.87654 -> "0.877"; None -> "n/a"."""
    return "n/a" if v is None else f"{v:.{digits}f}"


def counts_text(counts: dict) -> str:
    """Films by label: {"normal": 60, "covid19": 60} -> "60 normal and 60 COVID-19 films"."""
    parts = [f"{n} {'COVID-19' if name == 'covid19' else name}" for name, n in counts.items()]
    if not parts:
        return "no films"
    return (", ".join(parts[:-1]) + " and " if len(parts) > 1 else "") + parts[-1] + " films"


_MARKDOWN_ACTIVE = re.compile(r"([\\`*_\[\]<>#$~|:!&])")
# At the start of a line: a list item ("- x", "+ x", "1. x"), a thematic break ("---") or a heading's underline.
_LINE_START = re.compile(r"^(\s*|\s*\d{1,9})((?<=\d)[.)]|(?<!\d)[-+=])")

# Where GitHub-flavoured Markdown would link a bare address by itself ("www.", "http://", "name@host.org"), or
# Streamlit draw an icon (":material/home:"): both are found in the text after escapes are resolved, so only a
# character between breaks the match; a word joiner (U+2060) is invisible.
_SELF_STARTING = re.compile(r"(?i)(?<=www)(?=\.)|(?<=:)(?=//)|(?<=@)|(?<=:)(?=material/)")
WORD_JOINER = "\u2060"


def possessive(name: str) -> str:
    """ "St Elsewhere" -> "St Elsewhere's"; a name that already ends in one ("St Mary's") is left as it is."""
    return name if name.endswith(("'s", "\u2019s")) else f"{name}'s"


def inert(text) -> str:
    """``text`` with a word joiner where Markdown would start a link to a bare web or e-mail address, or Streamlit
    an icon, by itself."""
    return _SELF_STARTING.sub(WORD_JOINER, str(text))


def markdown_plain(text) -> str:
    """``text`` (a file's name, a source's name: anything a user or a file chose) escaped for Markdown, so that it is
    shown as it is, on one line: never a link (a bare web or e-mail address included), an image, emphasis, a list,
    a heading, an entity, LaTeX or an icon."""
    line = re.sub(r"[\r\n]+", " ", str(text))
    return inert(_LINE_START.sub(r"\1\\\2", _MARKDOWN_ACTIVE.sub(r"\\\1", line)))


def code_span(text) -> str:
    """``text`` as inline code whatever it holds: fenced by more backticks than its longest run of them, and padded
    when it starts or ends with one (CommonMark), so that a name with backticks cannot end the span early."""
    text = str(text).replace("\n", " ")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def code_block(text) -> str:
    """``text`` as a fenced code block whose fence is longer than any run of backticks inside it."""
    fence = "`" * max(3, max((len(run) for run in re.findall(r"`+", str(text))), default=0) + 1)
    return f"{fence}\n{text}\n{fence}"


# Control characters (C0 but tab and newline, DEL, C1): a terminal obeys them (ESC starts a sequence that can retitle
# the window or move the cursor, a carriage return overwrites what was printed).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text, keep: str = "") -> str:
    """``text`` with each control character but tab, newline and those in ``keep`` written as its code (``\\x1b``):
    for a terminal, where a file's name could otherwise send the terminal commands."""
    return _CONTROL.sub(lambda m: m.group() if m.group() in keep else f"\\x{ord(m.group()):02x}", str(text))
