"""What a classifier checkpoint's metadata must hold, checked once where a checkpoint is loaded.

Two kinds of entry, treated differently:

- what scoring a film needs (architecture, target and classes, preprocessing, temperature, the COVID-19 operating
  threshold, the familiarity statistics): a wrong value there refuses the checkpoint (CheckpointError, with the
  place named), since a verdict made from it could be wrong;
- what only describes the model (its TEST and VALIDATION figures, ROC curves, card measurements, timing): a section
  that is damaged, or laid out by another version, is taken out and named in ``metadata["damaged_sections"]``, so
  that the Models page, the card and the verdict texts show the rest and say what is missing instead of breaking.

The descriptive sections are checked against JSON Schemas (``jsonschema``), in which a number is a finite one.
"""

from __future__ import annotations

import re

from jsonschema import Draft202012Validator, validators

from .errors import CheckpointError, ConfigError
from .models import list_models
from .preprocess import PreprocessConfig
from .stored_values import is_finite_number
from .targets import CLASSES, COVID_CLASS

DAMAGED_KEY = "damaged_sections"
# What scoring reads (refused when wrong), and the checkpoint's own bookkeeping: never dropped as a description.
SCORING_KEYS = {"state_dict", "format", "model_name", "target", "classes", "preprocess", "temperature", "threshold",
                "ood", DAMAGED_KEY}
# A Markdown link or image ("](", "]["), an HTML tag, comment or autolink ("<a", "</", "<!", "<?"), or a bare web or
# e-mail address, which GitHub-flavoured Markdown links by itself ("www.", "://", "name@host.").
_MARKUP = re.compile(r"\]\s*[(\[]|<\s*[A-Za-z/!?]|(?i:\bwww\.)|://|[\w.+-]@[\w-]+\.")
MARKUP_NOTE = ("holds Markdown or HTML (a link, an image or a tag, or a bare web or e-mail address), which the card "
               "and the Models page would render")


def holds_markup(value) -> bool:
    """Whether a text, or any key or text inside a dict or list, would be a link, an image or a tag in Markdown.
    Descriptions are shown in the card and on the Models page, which render Markdown; a checkpoint made elsewhere
    could otherwise show a link, or an image that the browser fetches from another host."""
    if isinstance(value, str):
        return bool(_MARKUP.search(value))
    if isinstance(value, dict):
        return any(holds_markup(k) or holds_markup(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(holds_markup(v) for v in value)
    return False


def _finite_number(checker, value) -> bool:
    return is_finite_number(value)


# A "number" is a finite one (JSON Schema lets NaN through every bound); bools are neither numbers nor integers.
_Validator = validators.extend(Draft202012Validator, type_checker=Draft202012Validator.TYPE_CHECKER.redefine(
    "number", _finite_number))

TEXT = {"type": "string"}
NUMBER = {"type": "number"}
SHARE = {"type": "number", "minimum": 0, "maximum": 1}
SHARE_OR_NULL = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
COUNT = {"type": "integer", "minimum": 0}
COUNTS_BY_NAME = {"type": "object", "additionalProperties": COUNT}


def _record(required: list[str], **properties) -> dict:
    return {"type": "object", "required": required, "properties": properties}


RATES = {**_record([], sensitivity=SHARE_OR_NULL, specificity=SHARE_OR_NULL, ppv=SHARE_OR_NULL, npv=SHARE_OR_NULL,
                   tp=COUNT, fp=COUNT, fn=COUNT, tn=COUNT),
         "dependentRequired": {k: ["tp", "fp", "fn", "tn"] for k in ("tp", "fp", "fn", "tn")}}  # all four or none
SHORTCUTS = _record(
    [], within_source={"type": "object", "additionalProperties": _record(
        ["description", "auc", "n_negative", "n_positive"], description=TEXT, auc=SHARE_OR_NULL, auc_low=SHARE_OR_NULL,
        auc_high=SHARE_OR_NULL, n_negative=COUNT, n_positive=COUNT, positive_called=SHARE_OR_NULL)},
    source_probe={"type": ["object", "null"], "required": ["sources", "majority_share", "accuracy", "n"],
                  "properties": {"sources": {"type": "array", "items": TEXT}, "majority_share": SHARE,
                                 "accuracy": SHARE, "n": COUNT}})
PER_SOURCE = {"type": "object", "additionalProperties": _record(
    ["n", "accuracy", "true", "predicted"], n=COUNT, accuracy=SHARE_OR_NULL, true=COUNTS_BY_NAME,
    predicted=COUNTS_BY_NAME, confusion={"type": "object", "additionalProperties": COUNTS_BY_NAME})}


def _metrics(classes: list[str]) -> dict:
    """A split's figures (metrics.test, metrics.val, card.test): one row per class and a confusion matrix of the
    classes, which the card tabulates class by class."""
    n = len(classes)
    row = _record(["sensitivity", "specificity", "ppv", "auc"], sensitivity=SHARE_OR_NULL,
                  specificity=SHARE_OR_NULL, ppv=SHARE_OR_NULL, auc=SHARE_OR_NULL, support=COUNT)
    return _record(["per_class", "confusion_matrix"], n=COUNT, accuracy=SHARE_OR_NULL, macro_auc=SHARE_OR_NULL,
                   macro_auc_low=SHARE_OR_NULL, macro_auc_high=SHARE_OR_NULL, ece=SHARE_OR_NULL,
                   nll={"type": ["number", "null"]}, classes={"type": "array", "items": TEXT},
                   per_class={"type": "object", "required": classes, "additionalProperties": row},
                   confusion_matrix={"type": "array", "minItems": n, "maxItems": n,
                                     "items": {"type": "array", "minItems": n, "maxItems": n, "items": COUNT}},
                   per_source=PER_SOURCE, shortcuts=SHORTCUTS, at_threshold={"type": "object"})


def _sections(classes: list[str]) -> dict[tuple[str, ...], tuple[str, dict]]:
    """Each descriptive section's place in the metadata -> (its name for a reader, its schema)."""
    return {
        ("metrics", "test"): ("TEST figures", _metrics(classes)),
        ("metrics", "val"): ("VALIDATION figures", _metrics(classes)),
        ("metrics", "test_roc"): ("TEST ROC curves", {"type": "object", "additionalProperties": _record(
            ["fpr", "tpr"], fpr={"type": "array", "items": SHARE}, tpr={"type": "array", "items": SHARE})}),
        ("threshold", "test"): ("TEST figures at the operating threshold", RATES),
        ("threshold", "rule"): ("how the operating threshold was chosen", TEXT),
        ("threshold", "val_sensitivity"): ("VALIDATION sensitivity at the operating threshold", SHARE_OR_NULL),
        ("threshold", "val_specificity"): ("VALIDATION specificity at the operating threshold", SHARE_OR_NULL),
        ("card", "test"): ("the card's TEST figures", _metrics(classes)),
        ("card", "val"): ("the card's VALIDATION figures", _metrics(classes)),
        ("card", "normal_vs_pneumonia"): ("normal vs pneumonia on TEST", _record(
            ["n", "auc", "accuracy"], n=COUNT, auc=SHARE, accuracy=SHARE_OR_NULL)),
        ("card", "covid_calls_at_threshold"): ("COVID-19 verdicts by source", {"type": "array", "items": _record(
            ["source", "true class", "n", "called covid", "share"], source=TEXT, n=COUNT, share=SHARE,
            **{"true class": TEXT, "called covid": COUNT})}),
        ("card", "thorax_share"): ("heatmap energy inside the thorax",
                                   {"type": "object", "additionalProperties": SHARE_OR_NULL}),
        ("card", "thorax_heatmap"): ("the heatmap the thorax share was measured on", TEXT),
        ("card", "ood_check"): ("what the familiarity check flags", _record(
            ["non_xray_flagged", "non_xray_n", "transformed_xray_flagged", "transformed_xray_n", "test_flagged",
             "test_n"], non_xray_flagged=SHARE, non_xray_n=COUNT, transformed_xray_flagged=SHARE,
            transformed_xray_n=COUNT, test_flagged=SHARE, test_n=COUNT)),
        ("card", "ood_new_source"): ("what the familiarity check flags of a source left out", {
            "type": "object", "additionalProperties": _record(["flagged", "n"], flagged=SHARE, n=COUNT)}),
        ("card", "texture_swap"): ("texture swaps", {"type": "array", "items": _record(
            ["films", "donor", "n", "as_is", "swapped"], films=TEXT, donor=TEXT, n=COUNT, as_is=SHARE,
            swapped=SHARE)}),
        ("timing",): ("training time by step", _record(
            ["epoch_s"], epoch_s={"type": "array", "minItems": 1, "items": NUMBER},
            prepare_s={"type": ["number", "null"]}, finalize_s={"type": ["number", "null"]})),
        ("train_config",): ("training settings", {"type": "object"}),
        ("class_counts",): ("films per split and class", {"type": "object", "additionalProperties": COUNTS_BY_NAME}),
        ("training_data",): ("the data set it was trained on", _record(
            ["name"], name=TEXT, layout=TEXT, sources=COUNTS_BY_NAME, unreadable_n=COUNT,
            unreadable={"type": "array", "items": TEXT})),
        ("starting_weights",): ("the weights file it started from", _record(
            ["file", "sha256"], file=TEXT, sha256={"type": "string", "pattern": "^[0-9a-f]{64}$"})),
    }


def _where(error) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "the section itself"


def _refuse(name: str, what: str) -> CheckpointError:
    return CheckpointError(f"{name} cannot be used: {what}")


def check_scoring_entries(ckpt: dict, name: str) -> None:
    """Raise CheckpointError, naming the entry, when something that scoring a film needs is missing or of the wrong
    kind: the architecture's name, the target and its classes, the temperature, the operating threshold and the
    familiarity statistics' own figures. (The preprocessing is checked by PreprocessConfig; the tensors by scoring a
    film once when the model is built.)"""
    target = ckpt.get("target")
    if not isinstance(ckpt.get("model_name"), str):
        raise _refuse(name, "its architecture's name (model_name) is missing")
    if ckpt["model_name"] not in list_models():
        raise _refuse(name, f"its architecture {ckpt['model_name'][:40]!r} is not one of {', '.join(list_models())}")
    if not isinstance(target, str) or target not in CLASSES:
        raise _refuse(name, f"its target {str(target)[:40]!r} is not one of {', '.join(CLASSES)}")
    if ckpt.get("classes") != list(CLASSES[target]):
        raise _refuse(name, f"its classes are not those of target {target} ({', '.join(CLASSES[target])})")
    if not isinstance(ckpt.get("preprocess"), dict) or "image_size" not in ckpt["preprocess"]:
        raise _refuse(name, "its preprocessing settings (preprocess, with the image size) are missing")
    try:
        PreprocessConfig.from_dict(ckpt["preprocess"])
    except (ConfigError, TypeError) as exc:
        raise _refuse(name, f"its preprocessing settings are damaged ({exc})") from None
    temperature = ckpt.get("temperature")
    if temperature is not None and not (is_finite_number(temperature) and temperature > 0):
        raise _refuse(name, "its calibration temperature is not a positive number")
    threshold = ckpt.get("threshold")
    if threshold is not None and not isinstance(threshold, dict):
        raise _refuse(name, "its operating threshold is not a set of named values")
    if threshold:
        if threshold.get("class") != COVID_CLASS.get(target):
            raise _refuse(name, "its operating threshold names no class of the model, or another one")
        if not (is_finite_number(threshold.get("value")) and 0 <= threshold["value"] <= 1):
            raise _refuse(name, "its operating threshold is not a number from 0 to 1")
    ood = ckpt.get("ood")
    if holds_markup(ood):  # its method and part names are printed in the card
        raise _refuse(name, "its familiarity statistics hold Markdown or HTML (a link, an image or a tag)")
    if ood:
        problem = _familiarity_problem(ood)
        if problem:
            raise _refuse(name, f"its familiarity statistics are damaged ({problem}); refit them with `python -m "
                                "covid_core fit-ood CHECKPOINT --data DATA_DIR`")


def _familiarity_problem(ood) -> str:
    if not isinstance(ood, dict):
        return "not a set of named values"
    if not is_finite_number(ood.get("threshold")):
        return "threshold"
    for key in ("percentile", "val_flagged"):
        if key in ood and not is_finite_number(ood[key]):
            return key
    parts = ood.get("parts")
    if parts is None:
        return "" if ood.get("means") is not None and ood.get("precision") is not None else "means or precision"
    if not isinstance(parts, list) or not parts:
        return "parts"
    if ood["threshold"] != 1.0:  # each part's distances are divided by its own threshold, so the whole one is 1
        return "threshold: with parts it is 1"
    for i, part in enumerate(parts):
        if not isinstance(part, dict) or not isinstance(part.get("name"), str):
            return f"parts.{i}"
        if not (is_finite_number(part.get("threshold")) and part["threshold"] > 0):  # its distances are divided by it
            return f"parts.{i}.threshold"
        if part.get("means") is None or part.get("precision") is None:
            return f"parts.{i}: means or precision"
    return ""


def drop_damaged_sections(ckpt: dict) -> list[str]:
    """Take out each descriptive section that does not match its schema; returns, and keeps under
    ``damaged_sections``, one line per section taken out ("TEST figures (metrics.test): per_class.normal: 'auc' is a
    required property"). Sections that are absent are not damaged."""
    notes = []
    for place, (title, schema) in _sections(list(ckpt.get("classes") or [])).items():
        holder = ckpt
        for key in place[:-1]:
            holder = holder.get(key) if isinstance(holder, dict) else None
        if not isinstance(holder, dict) or place[-1] not in holder:
            continue
        if holds_markup(holder[place[-1]]):
            del holder[place[-1]]
            notes.append(f"{title} ({'.'.join(place)}): {MARKUP_NOTE}")
            continue
        error = next(iter(_Validator(schema).iter_errors(holder[place[-1]])), None)
        if error is not None:
            del holder[place[-1]]
            notes.append(f"{title} ({'.'.join(place)}): {_where(error)}: {error.message[:160]}")
    for key in [k for k in ckpt if k not in SCORING_KEYS and holds_markup(ckpt[k])]:  # created, hardware, ...
        del ckpt[key]
        notes.append(f"{key}: {MARKUP_NOTE}")
    for key in ("metrics", "card"):  # a threshold that is not one was refused by check_scoring_entries
        if key in ckpt and ckpt[key] is not None and not isinstance(ckpt[key], dict):
            notes.append(f"{key}: not a set of named values")
            del ckpt[key]
    ckpt[DAMAGED_KEY] = notes
    return notes


def checked(ckpt: dict, name: str) -> dict:
    """A classifier checkpoint dict as the rest of the package reads it: refused (CheckpointError) when scoring
    would go wrong, its damaged descriptive sections taken out and named (see the module's docstring)."""
    check_scoring_entries(ckpt, name)
    drop_damaged_sections(ckpt)
    return ckpt
