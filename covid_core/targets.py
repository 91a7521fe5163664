"""Prediction targets and how each data-set finding maps to their classes.

Every layout reader reduces a row to one *finding*:
``normal``, ``pneumonia`` (non-COVID pneumonia), ``covid19``, or ``noncovid`` (the COVIDx
data challenge's "negative": not COVID-19, normal or pneumonia unknown).

| finding   | 3class    | covid    | pneumonia                       |
|-----------|-----------|----------|---------------------------------|
| normal    | normal    | negative | normal                          |
| pneumonia | pneumonia | negative | pneumonia                       |
| covid19   | covid19   | positive | pneumonia (COVID-19 is a viral pneumonia) |
| noncovid  | (refused) | negative | (refused)                       |
"""

from __future__ import annotations

from .errors import ConfigError

FINDINGS = ("normal", "pneumonia", "covid19", "noncovid")

TARGETS: dict[str, dict[str, str | None]] = {
    "3class": {"normal": "normal", "pneumonia": "pneumonia", "covid19": "covid19", "noncovid": None},
    "covid": {"normal": "negative", "pneumonia": "negative", "covid19": "positive", "noncovid": "negative"},
    "pneumonia": {"normal": "normal", "pneumonia": "pneumonia", "covid19": "pneumonia", "noncovid": None},
}

CLASSES: dict[str, tuple[str, ...]] = {
    "3class": ("normal", "pneumonia", "covid19"),
    "covid": ("negative", "positive"),
    "pneumonia": ("normal", "pneumonia"),
}

#: The class whose probability drives the "COVID-19: positive/negative" verdict, per target.
COVID_CLASS = {"3class": "covid19", "covid": "positive", "pneumonia": None}


def check_target(target: str) -> str:
    if target not in TARGETS:
        raise ConfigError(f"unknown target {target!r}; choose one of: {', '.join(TARGETS)}")
    return target


def class_names(target: str) -> tuple[str, ...]:
    return CLASSES[check_target(target)]


def map_finding(finding: str, target: str) -> str | None:
    """The class name of ``finding`` under ``target``; None if the finding cannot be used."""
    return TARGETS[check_target(target)][finding]
