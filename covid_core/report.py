"""A self-contained HTML report for one case (images embedded as base64 PNG).

DICOM patient fields are left out unless ``include_patient_info=True``.
"""

from __future__ import annotations

import base64
import html
import io
import time

import numpy as np
from PIL import Image

from . import __version__
from .csv_safe import safe_cell
from .formatting import pct as _pct, probability_pcts
from .training_data import training_data
from .verdict import (RATE_TERMS, SITE_PNEUMONIA_SCORE, THRESHOLD_RATES, VERDICT_RATE, headline, operating_threshold,
                      rate_text, scored_by_site_head, validation_statement, verdict_caveat, verdict_limits,
                      withheld_reason)

DISCLAIMER = ("Research use only - not for diagnosis. This software has not been cleared or approved by any regulator. "
              "Its output must not replace the judgement of a qualified clinician.")


def png_bytes(image: np.ndarray) -> bytes:
    """float HxW in [0, 1], uint8 HxW or uint8 HxWx3 -> the bytes of a PNG file."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def png_data_uri(image: np.ndarray) -> str:
    """float HxW in [0, 1], uint8 HxW or uint8 HxWx3 -> 'data:image/png;base64,...'."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def _rows(pairs) -> str:
    return "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in pairs)


def site_validation_text(site) -> str:
    """Which site file was in force, so that a report can be traced to the validation behind its verdict."""
    if site is None:
        return "none: not validated at this hospital"
    return f"{site.name}" + (f", made {site.created}" if site.created else "") + (
        f", site file version {site.version}" if site.version else "") + (
        f"; the model did poorly there ({site.poor})" if site.poor else "") + (
        f"; too few films to confirm it ({site.unsettled})" if site.unsettled else "") + (
        "; only the call between normal and pneumonia was validated" if site.call_only else "") + (
        f"; the call is not confirmed there ({site.call_problem})" if site.call_only and site.call_problem else "")


def case_report_html(*, name: str, image: np.ndarray, prediction, classifier, model_label: str,
                     model_fingerprint: str = "", explanation=None, overlay_rgb: np.ndarray | None = None,
                     denoised: np.ndarray | None = None, patient_info: dict | None = None,
                     include_patient_info: bool = False) -> str:
    """HTML text of a one-case report.

    image: float32 HxW in [0, 1] as shown; prediction: covid_core.inference.Prediction;
    classifier: covid_core.checkpoint.Classifier; explanation: covid_core.explain.Explanation or None;
    overlay_rgb: uint8 HxWx3 Grad-CAM overlay; denoised: float32 HxW in [0, 1] or None.
    """
    esc = html.escape
    thr = operating_threshold(classifier)
    test = thr.get("test") or {}
    h, caveat = headline(prediction), verdict_caveat(prediction, classifier.site)
    verdict_class = {"positive": "pos", "abnormal": "abn", "negative": "neg"}.get(h.tone, "neutral")
    figures = [("Image", png_data_uri(image))]
    if overlay_rgb is not None:
        figures.append((f"Heatmap ({esc(getattr(explanation, 'method', ''))}, "
                        f"red: {esc(str(getattr(explanation, 'pushed', '')))})", png_data_uri(overlay_rgb)))
    if denoised is not None:
        figures.append(("Denoised (DAE)", png_data_uri(denoised)))
    fig_html = "".join(f'<figure><img src="{uri}" alt="{esc(cap)}"><figcaption>{cap}</figcaption></figure>'
                       for cap, uri in figures)
    probs = "".join(
        f'<tr><th>{esc(c)}</th><td><div class="bar" style="width:{100 * p:.1f}%"></div></td>'
        f'<td>{esc(probability_pcts(p)[0])}</td></tr>'
        for c, p in sorted(prediction.probabilities.items(), key=lambda kv: -kv[1]))
    numbers = []
    if prediction.threshold is not None:
        numbers += [("COVID-19 probability at this site (the verdict's; the network's own is above)"
                     if scored_by_site_head(classifier)
                     else "COVID-19 probability", probability_pcts(prediction.covid_probability)[0]),
                    ("Operating threshold", f"{prediction.threshold:.3f} ({thr.get('rule', 'stored rule')})")]
    if prediction.pneumonia_probability is not None and not prediction.withheld:
        numbers.append((SITE_PNEUMONIA_SCORE, probability_pcts(prediction.pneumonia_probability)[0]))
    if prediction.threshold is not None:
        if not prediction.withheld:  # no verdict, so no verdict's reliability
            this_verdict = VERDICT_RATE.get(prediction.covid_call)
            rates = [(f"TEST {name} at this threshold" + (" (this verdict's)" if key == this_verdict else ""),
                      rate_text(test, key)) for key, name in THRESHOLD_RATES if test.get(key) is not None]
            numbers += rates + ([("Terms", RATE_TERMS)] if rates else [])
    if prediction.ood_score is not None:
        numbers.append(("Out-of-distribution score", f"{prediction.ood_score:.2f}"
                        + f" ({classifier.ood.get('threshold', float('nan')):.2f} or more means unlike the training "
                        + "X-rays; this image: " + ("unlike them, no verdict given)" if prediction.ood_flagged
                                                    else "like them)")))
    if explanation is not None:
        if explanation.faithfulness is not None:
            numbers.append(("Heatmap faithfulness", f"{100 * explanation.faithfulness:.1f} percentage points: "
                            f"{explanation.faithfulness_name}"))
        numbers.append(("Heatmap share inside the thorax", _pct(explanation.thorax_share)))
    warnings = list(prediction.warnings)
    if explanation is not None:
        warnings += [w for w in (explanation.shortcut_warning, explanation.faithfulness_warning) if w]
    warn_html = "".join(f'<p class="warn">{esc(w)}</p>' for w in warnings)
    if prediction.withheld:
        warn_html = f'<p class="warn">{esc(withheld_reason(prediction))}</p>' + warn_html
    limits = verdict_limits(prediction, classifier.metadata, thr, site=classifier.site) + [
        validation_statement(classifier.site, prediction, classifier.metadata)]
    warn_html += "".join(f'<p class="limit">{esc(s)}</p>' for s in limits)
    meta = classifier.metadata
    model_rows = [("Model", model_label), ("Architecture", classifier.spec.name), ("Target", classifier.target),
                  ("Classes", ", ".join(classifier.classes)), ("Weights fingerprint", model_fingerprint or "n/a"),
                  ("Trained on", training_data(meta).summary()),
                  ("Data set fingerprint", meta.get("data_fingerprint", "n/a")),
                  ("Trained", meta.get("created", "n/a")), ("Site validation", site_validation_text(classifier.site)),
                  ("covid_core version", __version__)]
    patient_html = ""
    if include_patient_info and patient_info:
        patient_html = f"<h2>Patient (from the DICOM header)</h2><table>{_rows(patient_info.items())}</table>"
    created = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Chest X-ray report - {esc(name)}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 60rem; margin: 2rem auto; color: #1b1f24; }}
.notice {{ background: #fff4e5; border-left: 4px solid #e8590c; padding: .6rem 1rem; }}
.verdict {{ font-size: 1.6rem; font-weight: 700; padding: .6rem 1rem; border-radius: 6px; display: inline-block; }}
.pos {{ background: #ffe3e3; color: #a61e1e; }} .neg {{ background: #e6f4ea; color: #1e6b34; }}
.abn {{ background: #fff3d6; color: #7a4a00; }} .neutral {{ background: #eef; }}
.unsettled {{ border: 2px dashed currentColor; }} .caveat {{ font-size: .9rem; font-weight: 400; font-style: italic; }}
figure {{ display: inline-block; margin: .5rem; width: 30%; vertical-align: top; }} figure img {{ width: 100%; }}
figcaption {{ font-size: .85rem; color: #555; text-align: center; }}
table {{ border-collapse: collapse; margin: .5rem 0; }} th, td {{ text-align: left; padding: .25rem .8rem; border-bottom: 1px solid #ddd; }}
.bar {{ background: #1c7ed6; height: .8rem; min-width: 1px; }} td:nth-child(2) {{ width: 16rem; }}
.warn {{ background: #fff9db; border-left: 4px solid #f08c00; padding: .4rem .8rem; }}
.limit {{ background: #e7f0fa; border-left: 4px solid #1c5d99; padding: .4rem .8rem; }}
</style></head><body>
<p class="notice"><strong>{esc(DISCLAIMER)}</strong></p>
<h1>Chest X-ray analysis: {esc(name)}</h1>
<p>Generated {esc(created)}</p>
<div class="verdict {verdict_class}{' unsettled' if caveat else ''}">{esc(h.title)}{
    f'<div class="caveat">{esc(caveat)}</div>' if caveat else ''}</div>
{f'<p><strong>{esc(h.covid_line)}</strong></p>' if h.covid_line else ''}
{warn_html}
<div>{fig_html}</div>
<h2>{'Raw model output (not a finding: no verdict was given)' if prediction.withheld else 'Class probabilities'}</h2>
<table>{probs}</table>
<h2>Numbers</h2><table>{_rows(numbers)}</table>
<h2>Model</h2><table>{_rows(model_rows)}</table>
{patient_html}
<p class="notice">{esc(DISCLAIMER)}</p>
</body></html>
"""


def prediction_row(name: str, prediction, error: str | None = None) -> dict:
    """One row of the many-files results table (also its CSV): verdict, probabilities, OOD flag, error."""
    row = {"file": safe_cell(name), "call": "", "verdict": "", "COVID-19 probability": None,
           "out of distribution": None}
    if prediction is not None:
        # no verdict: one short word here, the reason in the verdict column (not the same sentence twice)
        row["call"] = "No verdict" if prediction.withheld else headline(prediction).title
        row["verdict"] = prediction.verdict
        row["out of distribution"] = prediction.ood_flagged
        if not prediction.withheld:  # no verdict: no probabilities that would read as one
            row["COVID-19 probability"] = prediction.covid_probability
            row.update({f"p({c})": p for c, p in prediction.probabilities.items()})
    row["error"] = safe_cell(error or "")
    return row
