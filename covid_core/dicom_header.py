"""What a DICOM header says about a film before any model looks at it.

The classifiers read frontal (PA or AP) chest radiographs as a reader sees them. A DICOM file names its view, body
part and modality; where the header plainly says the film is something else (a lateral or oblique view, a knee, a
CT slice), no verdict is given, whatever the familiarity score says: the shipped familiarity check was measured on
rotated and inverted films and on non-X-ray images, never on lateral chest films, which the data set does not hold.
Nor is a verdict given on a raw detector image (Presentation Intent Type "FOR PROCESSING", or a "For Processing"
storage class): the unprocessed signal a digital X-ray unit passes to its own image processing, flat and grey,
which no training film resembles; the processed "FOR PRESENTATION" image of the same exposure is the one to send.

Only values that clearly name something else count: headers are often empty or free text ("PORTABLE AP",
"TORAX"), and an unknown word never withholds a verdict.
"""

from __future__ import annotations

import re

from .formatting import inert

# ViewPosition words of views that are not frontal (DICOM defined terms and common free-text spellings).
NOT_FRONTAL_VIEWS = {"LL", "RL", "LLD", "RLD", "LLO", "RLO", "LAO", "RAO", "LPO", "RPO", "LAT", "LATERAL", "OBL",
                     "OBLIQUE", "DECUBITUS", "XTABLE"}
# BodyPartExamined words of other body parts, unless a chest word is also there ("CHEST ABDOMEN").
OTHER_BODY_PARTS = {"SKULL", "HEAD", "BRAIN", "NECK", "CSPINE", "TSPINE", "LSPINE", "SSPINE", "SPINE", "ABDOMEN",
                    "PELVIS", "HIP", "KNEE", "ANKLE", "FOOT", "TOE", "HAND", "WRIST", "FINGER", "ELBOW", "ARM",
                    "FOREARM", "LEG", "FEMUR", "TIBIA", "HUMERUS", "SHOULDER", "EXTREMITY", "JAW", "BREAST", "SINUS"}
CHEST_WORDS = {"CHEST", "THORAX", "LUNG", "LUNGS", "TORAX", "THORAC", "TORACE", "BRUST", "POUMON", "PULMON"}
# Modalities that are not projection radiographs (CR, DX, RX, and SC or OT for scanned films, are read).
OTHER_MODALITIES = {"CT", "MR", "US", "NM", "PT", "MG", "XA", "RF", "OP", "SM", "ES", "IVUS", "OCT"}


# Storage classes of raw detector images (digital X-ray, mammography, intra-oral): "... - For Processing".
FOR_PROCESSING_CLASSES = {"1.2.840.10008.5.1.4.1.1.1.1.1", "1.2.840.10008.5.1.4.1.1.1.2.1",
                          "1.2.840.10008.5.1.4.1.1.1.3.1"}


def _shown(value) -> str:
    """A header value as the sentence quotes it: letters, digits, spaces and ``-_./`` only, at most 64 characters.
    A code string holds no other characters, and a file's maker could otherwise write Markdown or HTML into the
    page that shows the sentence (a link, an image fetched from another host)."""
    kept = "".join(c if c.isalnum() or c in "-_./" else " " for c in str(value))
    return inert(" ".join(kept.split())[:64])  # "www.host.org" would still be a link


def _words(value) -> set[str]:
    return {w for w in re.split(r"[^A-Z]+", str(value).upper()) if w}


def not_a_frontal_chest_film(dicom_info: dict) -> str:
    """A sentence for a clinician when the header (``DecodedImage.dicom_info``) says the film is not a frontal
    chest radiograph; "" when it does not say so (or there is no header)."""
    info = dicom_info or {}
    view, part, modality = (info.get(k) for k in ("ViewPosition", "BodyPartExamined", "Modality"))
    if modality is not None and str(modality).strip().upper() in OTHER_MODALITIES:
        found = f"its modality is {_shown(modality)}, not a radiograph"
    elif view is not None and _words(view) & NOT_FRONTAL_VIEWS:
        found = f"its view is {_shown(view)}, not a frontal (PA or AP) view"
    elif part is not None and _words(part) & OTHER_BODY_PARTS and not _words(part) & CHEST_WORDS:
        found = f"the body part examined is {_shown(part)}"
    else:
        return ""
    return (f"The DICOM header says this is not a frontal chest X-ray ({found}). The model reads frontal chest X-rays "
            "only, so no verdict is given.")


def raw_detector_image(dicom_info: dict) -> str:
    """A sentence for a clinician when the header says the film is the unprocessed detector signal ("FOR
    PROCESSING"); "" otherwise."""
    info = dicom_info or {}
    intent = str(info.get("PresentationIntentType") or "").strip().upper()
    if intent != "FOR PROCESSING" and str(info.get("SOPClassUID") or "").strip() not in FOR_PROCESSING_CLASSES:
        return ""
    return ("The DICOM header says this is a raw detector image (FOR PROCESSING), the unprocessed signal before the "
            "X-ray unit's own image processing, not the film a reader sees. The model learned from processed films only, so no verdict is given: "
            "send the FOR PRESENTATION image of the same exposure.")


def why_no_verdict(dicom_info: dict) -> tuple[str, str]:
    """(kind, sentence) when the header says the model must not read this film: kind "not_frontal" (another view,
    body part or modality) or "raw" (a raw detector image); ("", "") when it says nothing against it."""
    for kind, check in (("not_frontal", not_a_frontal_chest_film), ("raw", raw_detector_image)):
        sentence = check(dicom_info)
        if sentence:
            return kind, sentence
    return "", ""
