"""What the Models page tabulates about a checkpoint, as plain rows (no Streamlit here)."""

from __future__ import annotations

from .formatting import markdown_plain
from .formatting import pct as _pct
from .training_data import training_data


def overview_rows(entries) -> list[dict]:
    """The catalog's entries (:class:`~covid_core.model_catalog.CatalogEntry`) as the overview table's rows."""
    from .model_catalog import held_back_reasons

    held_back = held_back_reasons(entries)
    return [overview_row(e, held_back=str(e.path) in held_back) for e in entries]


def overview_row(entry, held_back: bool = False) -> dict:
    """One catalog entry as a row of the overview table: seven narrow columns, so that the table fits a 1024 px
    window (fingerprint and size are in :func:`model_facts`, why a checkpoint cannot be used in
    :func:`unusable_reasons`). ``held_back``: a classifier Diagnose offers in research mode only."""
    test = (entry.metadata.get("metrics") or {}).get("test") or {}
    at_threshold = (entry.metadata.get("threshold") or {}).get("test") or {}
    # A denoiser is not a classifier, but it is not broken either: say where it is used, not what is "wrong".
    used_on = "Diagnose" if entry.usable else ("Denoise" if entry.kind == "denoiser" else None)
    if used_on == "Diagnose" and held_back:
        used_on = "Diagnose (research mode)"
    model = " ".join(str(v) for v in (entry.metadata.get("model_name"), entry.metadata.get("target")) if v)
    return {"checkpoint": entry.label, "used on": used_on or "unusable", "model": model or entry.kind,
            "AUC": test.get("macro_auc"), "accuracy": test.get("accuracy"),
            "COVID sens.": at_threshold.get("sensitivity"), "PPV": at_threshold.get("ppv")}


def unusable_reasons(entries) -> list[str]:
    """'name: why' for each checkpoint that neither Diagnose nor Denoise can use."""
    return [f"{e.label}: {e.reason or 'not a usable checkpoint'}" for e in entries
            if not e.usable and e.kind != "denoiser"]


def starting_point(meta: dict) -> str:
    """Where training started: random weights, ImageNet's, or a weights file (named, with its digest's start)."""
    start = meta.get("starting_weights")
    if isinstance(start, dict):
        return f"the weights file {start.get('file', '?')} (sha256 {str(start.get('sha256', '?'))[:16]}...)"
    pretrained = str((meta.get("train_config") or {}).get("pretrained", "none"))
    return {"none": "random weights", "imagenet": "ImageNet weights"}.get(pretrained, f"the weights file {pretrained}")


def model_facts(entry, classes: list[str]) -> dict[str, str]:
    """Name -> value of what a checkpoint is: classes, fingerprints, creation, training time, input, calibration."""
    meta = entry.metadata
    pre = meta.get("preprocess") or {}
    facts = {"classes": ", ".join(classes), "weights fingerprint (SHA-256)": entry.fingerprint,
             "trained on": training_data(meta).summary(), "started from": starting_point(meta),
             "data set fingerprint": meta.get("data_fingerprint", "n/a"), "created": meta.get("created", "n/a"),
             "training time (s)": meta.get("training_time_s", "n/a"), "hardware": meta.get("hardware", "n/a"),
             "input": f"{pre.get('image_size', '?')} px, fit {pre.get('fit', '?')}, equalize {pre.get('equalize', '?')}",
             "temperature (calibration)": f"{meta['temperature']:.3f}" if meta.get("temperature") else "n/a",
             "size (MB)": round(entry.size_mb, 1), "file": str(entry.path)}
    return {k: str(v) for k, v in facts.items()}


def per_source_rows(per_source: dict, classes: list[str]) -> list[dict]:
    """TEST results per image source: films, accuracy and how many of each true class."""
    return [{"source": s, "images": v.get("n"), "accuracy": v.get("accuracy"),
             **{f"true {c}": (v.get("true") or {}).get(c, 0) for c in classes}} for s, v in per_source.items()]


def thorax_heatmap(card: dict) -> str:
    """The heatmap a card's thorax shares were measured on: its method and layer ("hirescam at layer3.1"); cards
    written before they named it measured Grad-CAM at the network's last stage."""
    return markdown_plain(str(card.get("thorax_heatmap") or "gradcam at the last stage"))


def measured_limits(card: dict) -> list[tuple[str, str]]:
    """(measure, on TEST) rows from a checkpoint's ``card`` section: normal vs pneumonia, where the heatmap looks,
    and what the familiarity check flags."""
    rows = []
    pair = card.get("normal_vs_pneumonia")
    if pair:
        rows.append(("normal vs pneumonia", f"AUC {pair['auc']:.3f}, accuracy {_pct(pair.get('accuracy'))} "
                                            f"({pair['n']} films whose true class is one of the two)"))
    thorax = card.get("thorax_share") or {}
    if thorax:
        rows.append(("heatmap energy inside the thorax", ", ".join(f"{c} {_pct(v)}" for c, v in thorax.items())
                     + f" ({thorax_heatmap(card)}; mean over at most {card.get('thorax_n', '?')} films per class; "
                       "evidence outside the chest is a shortcut warning sign)"))
    check = card.get("ood_check")
    if check:
        rows.append(("flagged as unlike the training X-rays",
                     f"{_pct(check['non_xray_flagged'])} of {check['non_xray_n']} non-X-rays, "
                     f"{_pct(check['transformed_xray_flagged'])} of {check['transformed_xray_n']} rotated or "
                     f"inverted X-rays, {_pct(check['test_flagged'])} of {check['test_n']} TEST X-rays"))
    return rows
