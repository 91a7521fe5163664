"""Model cards generated from a checkpoint's metadata (never written by hand).

``python -m covid_core model-card weights/resnet18.pt --data DATA_DIR`` re-evaluates TEST, adds the
normal-vs-pneumonia analysis, per-source results and the Grad-CAM thorax share per class, stores them in
the checkpoint (key ``card``) and writes ``weights/resnet18.md``.
"""

from __future__ import annotations

import shlex

import numpy as np

from .targets import COVID_CLASS

KNOWN_LIMITS = """\
- Trained and tested on `coronahack-mini`, whose classes are still partly confounded with age and source:
  the children (normal and pneumonia) all come from one hospital (Guangzhou, Kermany et al.), the adult normals
  and most adult pneumonias from one US hospital (NIH Clinical Center), and the COVID-19 films from many
  hospitals and publications (the COVID-19 image collection, `cohen`, and Figure 1), which also hold the only
  48 adult non-COVID pneumonias from outside NIH. "An adult film not from NIH" therefore predicts COVID-19 on
  this data and will not at another hospital. The within-source figures above measure how far the model reads
  the disease rather than the source (DeGrave et al., Nature Machine Intelligence 2021).
- TEST is patient-disjoint from TRAIN but drawn from the same sources: expect lower figures at another
  hospital. Validate the model on your own labelled films before relying on it.
- NIH labels were text-mined from reports; its "Pneumonia" label is its noisiest, and a few "No Finding"
  films show lines, tubes or opacities.
- The out-of-distribution score flags images unlike the training data; it is not a guarantee, and films from
  a new hospital often pass it.
- Research use only, not for diagnosis."""


def shortcut_rows(metadata: dict) -> list[dict]:
    """The within-source AUCs and source probe of a checkpoint, VALIDATION then TEST, as table rows
    {"split", "question", "AUC / accuracy", "films"} (for the Models page)."""
    rows = []
    for split, metrics in (("VALIDATION", (metadata.get("metrics") or {}).get("val")), ("TEST", metrics_on_test(metadata))):
        shortcuts = (metrics or {}).get("shortcuts") or {}
        for q in (shortcuts.get("within_source") or {}).values():
            rows.append({"split": split, "question": q["description"], "AUC / accuracy": q["auc"],
                         "films": f"{q['n_negative']} / {q['n_positive']}"})
        probe = shortcuts.get("source_probe")
        if probe:
            rows.append({"split": split, "question": f"source probe: naming the source from the features (lower is "
                                                     f"better; majority {probe['majority_share']:.2f})",
                         "AUC / accuracy": probe["accuracy"], "films": str(probe["n"])})
    return rows


def shortcut_lines(shortcuts: dict | None, split: str) -> list[str]:
    """Markdown rows of the within-source AUCs and the source probe of one split (see covid_core.shortcuts)."""
    if not shortcuts:
        return []
    lines = []
    for q in shortcuts.get("within_source", {}).values():
        called = "" if q.get("positive_called") is None else f"; {_pct(q['positive_called'])} of the positives " \
            "labelled as such"
        lines.append(f"| {split} | {q['description']} | {_f(q['auc'])} | {q['n_negative']} / {q['n_positive']}"
                     f"{called} |")
    probe = shortcuts.get("source_probe")
    if probe:
        lines.append(f"| {split} | source probe: accuracy naming the source ({', '.join(probe['sources'])}) from the "
                     f"penultimate features, lower is better (majority share {_f(probe['majority_share'])}) | "
                     f"{_f(probe['accuracy'])} | {probe['n']} films |")
    return lines


def covid_calls_by_source(per_source: dict, covid: str | None) -> list[dict]:
    """How often non-COVID films were called COVID-19, per source and true class (the confound check).

    per_source: ``metrics["per_source"]`` ({source: {"confusion": {true: {predicted: n}}, ...}}).
    Rows: {"source", "true class", "n", "called covid", "share"}.
    """
    rows = []
    for source, m in per_source.items():
        for true_class, row in (m.get("confusion") or {}).items():
            if covid and covid in row and true_class != covid:
                n = sum(row.values())
                rows.append({"source": source, "true class": true_class, "n": n, "called covid": row[covid],
                             "share": row[covid] / max(n, 1)})
    return rows


def covid_calls_at_threshold(table, covid_probability: np.ndarray, threshold: float, covid: str) -> list[dict]:
    """Like :func:`covid_calls_by_source`, but counting the films a COVID-19 positive verdict was given to (calibrated
    p(COVID-19) at or above the operating ``threshold``), so the groups add up to the false positives behind PPV.

    table: the evaluated films (columns source, label), aligned with ``covid_probability`` (float N).
    """
    called = np.asarray(covid_probability) >= threshold
    rows = []
    for (source, true_class), idx in table.reset_index(drop=True).groupby(["source", "label"]).indices.items():
        if true_class != covid:
            n, hits = len(idx), int(called[idx].sum())
            rows.append({"source": str(source), "true class": str(true_class), "n": n, "called covid": hits,
                         "share": hits / n})
    return rows


def metrics_on_test(metadata: dict) -> dict:
    """A checkpoint's TEST metrics: the card's re-evaluation (``model-card --data``) if present, else training's."""
    return (metadata.get("card") or {}).get("test") or (metadata.get("metrics") or {}).get("test") or {}


def false_covid_calls(metadata: dict) -> tuple[list[dict], bool]:
    """(rows, at_threshold): the non-COVID TEST films called COVID-19, per source and true class.

    Counted at the operating threshold when ``model-card --data`` stored them (``card.covid_calls_at_threshold``,
    at_threshold True), else by most probable class from the per-source confusion (older checkpoints).
    """
    stored = (metadata.get("card") or {}).get("covid_calls_at_threshold")
    if stored is not None:
        return stored, True
    per_source = metrics_on_test(metadata).get("per_source") or {}
    return covid_calls_by_source(per_source, COVID_CLASS.get(metadata.get("target"))), False


# A group of non-COVID films called COVID-19 this often (or more) on TEST is named next to every positive verdict
# (older checkpoints, whose groups were counted by most probable class rather than at the threshold).
NOTABLE_FALSE_COVID_SHARE = 0.2
# What the sources of coronahack-mini's provenance.csv are, for a reader who has not read its SOURCES.md.
SOURCE_NOTES = {"kermany": "paediatric films, Guangzhou", "nih": "adult films, NIH Clinical Center",
                "cohen": "adult films from the COVID-19 image collection of Cohen et al.",
                "figure1": "adult films from the Figure 1 COVID-19 collection"}


def positive_verdict_limits(metadata: dict, threshold: dict) -> list[str]:
    """What a COVID-19 positive verdict of this model is worth, measured on TEST: sentences for a clinician.

    metadata: a classifier checkpoint's metadata (``Classifier.metadata``); threshold: its ``threshold`` entry, whose
    ``test`` rates were measured at the operating threshold. The PPV sentence gives TEST's COVID-19 share, since
    PPV falls where COVID-19 is rarer. The second says where the false positives came from: every (source, true
    class) group of non-COVID films given a positive verdict at the threshold (``card.covid_calls_at_threshold``,
    stored by ``model-card --data``), so the groups add up to the false positives; for older checkpoints, the groups
    whose most probable class was COVID-19 at least ``NOTABLE_FALSE_COVID_SHARE`` of the time. Empty without a
    COVID-19 class or TEST metrics.
    """
    covid = COVID_CLASS.get(metadata.get("target"))
    test = metrics_on_test(metadata)
    if not covid or not test:
        return []
    sentences = []
    ppv = ((threshold or {}).get("test") or {}).get("ppv")
    if ppv is not None:
        text = f"On TEST, {_pct(ppv)} of the films this model called COVID-19 positive had COVID-19 (PPV)."
        n, n_covid = test.get("n"), ((test.get("per_class") or {}).get(covid) or {}).get("support")
        if n and n_covid:
            text += (f" {n_covid} of the {n} TEST films ({_pct(n_covid / n)}) had COVID-19; where COVID-19 is rarer, "
                     "a larger share of positive verdicts is wrong.")
        sentences.append(text)
    calls, at_threshold = false_covid_calls(metadata)
    if at_threshold:
        groups = sorted((r for r in calls if r["called covid"]), key=lambda r: -r["share"])
        lead = f"Its {sum(r['called covid'] for r in groups)} false positives on TEST were"
    else:
        groups = [r for r in calls if r["called covid"] and r["share"] >= NOTABLE_FALSE_COVID_SHARE]
        lead = f"On TEST it also named {covid} the most probable class for"
    if groups:
        listed = "; ".join(f"{r['called covid']} of {r['n']} {r['true class']} films from source '{r['source']}'"
                           + (f" ({SOURCE_NOTES[r['source']]})" if r["source"] in SOURCE_NOTES else "")
                           for r in groups)
        sentences.append(f"{lead}: {listed}. A positive verdict means the film looks like the COVID-19 films it was "
                         "trained on; it does not tell COVID-19 from other lung disease in the same kind of patient "
                         "(age, hospital).")
    return sentences


def pair_metrics(labels: np.ndarray, probs: np.ndarray, classes, a: str = "normal", b: str = "pneumonia") -> dict | None:
    """AUC and accuracy of ``a`` vs ``b`` on the images whose true class is one of the two
    (score: p_b / (p_a + p_b); accuracy: the more probable of the two). None if not applicable."""
    from sklearn.metrics import roc_auc_score

    classes = list(classes)
    if a not in classes or b not in classes:
        return None
    ia, ib = classes.index(a), classes.index(b)
    labels = np.asarray(labels)
    m = (labels == ia) | (labels == ib)
    if m.sum() == 0:
        return None
    y = labels[m] == ib
    score = probs[m, ib] / np.clip(probs[m, ia] + probs[m, ib], 1e-12, None)
    auc = float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else None
    return {"n": int(m.sum()), "auc": auc, "accuracy": float(((score >= 0.5) == y).mean())}


DATA_PLACEHOLDER = "../shared/data/coronahack-mini"  # where the card's command expects the data set


def reproduce_command(train_config: dict, out: str) -> str:
    """The train.py command line that reproduces a classifier from its saved config (settings that differ from
    the defaults, plus model, epochs, image size and seed)."""
    from .flags import config_argv
    from .training import TRAIN_FLAGS, TrainConfig

    config = TrainConfig.from_dict(train_config)
    argv = config_argv(config, TRAIN_FLAGS, TrainConfig(), always=("model", "epochs", "image_size", "seed"))
    return shlex.join(["python", "train.py", "--data", DATA_PLACEHOLDER, *argv, "--out", out])


def dae_reproduce_command(train_config: dict, out: str) -> str:
    """The train-dae command line that reproduces a DAE from its saved config (settings that differ from the
    defaults, plus epochs, steps and seed)."""
    from .denoise.training import DAE_FLAGS, DAETrainConfig
    from .flags import config_argv

    config = DAETrainConfig.from_dict(train_config)
    argv = config_argv(config, DAE_FLAGS, DAETrainConfig(), always=("epochs", "steps_per_epoch", "seed"))
    return shlex.join(["python", "-m", "covid_core", "train-dae", "--data", DATA_PLACEHOLDER, *argv, "--out", out])


def _timing_text(timing: dict | None) -> str:
    """': data preparation 41 s (...), epoch 1 105 s, later epochs 84-128 s (median 99 s), calibration ... 35 s'."""
    if not timing or not timing.get("epoch_s"):
        return ""
    ep = timing["epoch_s"]
    parts = [f"data preparation {timing['prepare_s']:.0f} s (decoding into the cache, or reading the cache when "
             "an earlier run with the same settings built it)"] if timing.get("prepare_s") is not None else []
    parts.append(f"epoch 1 {ep[0]:.0f} s")
    if len(ep) > 1:
        later = sorted(ep[1:])
        parts.append(f"later epochs {later[0]:.0f}-{later[-1]:.0f} s (median {float(np.median(later)):.0f} s)")
    if timing.get("finalize_s") is not None:
        parts.append(f"calibration + OOD fit + TEST evaluation {timing['finalize_s']:.0f} s")
    return ": " + ", ".join(parts)


def _pct(v):
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _f(v, digits=3):
    return "n/a" if v is None else f"{v:.{digits}f}"


def card_markdown(ckpt: dict, name: str, out_path: str) -> str:
    """The model card of a classifier checkpoint dict (with its ``card`` section if present)."""
    card = ckpt.get("card", {})
    metrics = card.get("test") or ckpt.get("metrics", {}).get("test", {})
    classes = ckpt["classes"]
    cfg = ckpt.get("train_config", {})
    lines = [f"# Model card: `{name}`", "",
             "_Generated by `python -m covid_core model-card` from the checkpoint's metadata. Research use only, "
             "not for diagnosis._", "",
             "## Model",
             f"- Architecture: `{ckpt['model_name']}`, target `{ckpt['target']}`, classes: {', '.join(classes)}",
             f"- Input: {ckpt['preprocess']['image_size']} px, fit `{ckpt['preprocess']['fit']}`, equalize "
             f"`{ckpt['preprocess']['equalize']}` (stored in the checkpoint, applied at inference)",
             f"- Package version {ckpt.get('package_version', '?')}, torch {ckpt.get('torch_version', '?')}, "
             f"created {ckpt.get('created', '?')}, best epoch {ckpt.get('epoch', '?')}",
             "", "## Data",
             f"- Data set fingerprint: `{ckpt.get('data_fingerprint', '?')}` (coronahack-mini, CoronaHack layout)",
             f"- Images per split and class: {ckpt.get('class_counts', {})}",
             "- Validation: carved from TRAIN, stratified by class and grouped by patient "
             f"({cfg.get('val_fraction', '?')} of TRAIN, seed {cfg.get('seed', '?')})",
             "", "## Reproduce",
             f"```\n{reproduce_command(cfg, out_path)}\n```",
             f"- Training time: {ckpt.get('training_time_s', '?')} s on {ckpt.get('hardware', '?')} "
             + ("(including caching, calibration and TEST evaluation)" + _timing_text(ckpt["timing"]) if ckpt.get("timing")
                else "(caching and training epochs; this older checkpoint recorded it before the final calibration "
                     "and TEST evaluation)"),
             "", "## TEST metrics", ""]
    if metrics:
        lines += [f"- Images: {metrics.get('n')}; accuracy **{_f(metrics.get('accuracy'))}**; macro AUC "
                  f"**{_f(metrics.get('macro_auc'))}**; expected calibration error {_f(metrics.get('ece'))} "
                  f"(temperature {ckpt.get('temperature', 1.0):.3f}, fitted on validation)", "",
                  "| class | support | sensitivity | specificity | PPV | AUC |", "| --- | --- | --- | --- | --- | --- |"]
        for c in classes:
            m = metrics["per_class"][c]
            lines.append(f"| {c} | {m.get('support', '')} | {_f(m['sensitivity'])} | {_f(m['specificity'])} | "
                         f"{_f(m['ppv'])} | {_f(m['auc'])} |")
        lines += ["", "Confusion matrix (rows true, columns predicted):", "",
                  "| true \\ predicted | " + " | ".join(classes) + " |", "| --- " * (len(classes) + 1) + "|"]
        for c, row in zip(classes, metrics["confusion_matrix"]):
            lines.append(f"| {c} | " + " | ".join(map(str, row)) + " |")
        pair = card.get("normal_vs_pneumonia")
        if pair:
            lines += ["", f"Normal vs pneumonia (the hard part; {pair['n']} TEST images whose true class is one of the "
                          f"two): AUC {_f(pair['auc'])}, accuracy {_f(pair['accuracy'])}."]
    thr = ckpt.get("threshold") or {}
    covid = COVID_CLASS.get(ckpt["target"])
    if thr:
        test = thr.get("test", {})
        lines += ["", "## Operating threshold (COVID-19 verdict)",
                  f"- `p({covid}) >= {thr['value']:.4f}` means COVID-19 positive; chosen on VALIDATION, never on TEST: "
                  f"{thr.get('rule', '')}",
                  f"- Validation: sensitivity {_f(thr.get('val_sensitivity'))}, specificity "
                  f"{_f(thr.get('val_specificity'))}",
                  f"- TEST at this threshold: sensitivity {_f(test.get('sensitivity'))}, specificity "
                  f"{_f(test.get('specificity'))}, PPV {_f(test.get('ppv'))}"
                  + (f", NPV {_f(test.get('npv'))} (true / false positives {test['tp']} / {test['fp']}, "
                     f"false / true negatives {test['fn']} / {test['tn']})" if "tp" in test else "")]
    per_source = metrics.get("per_source") if metrics else None
    if per_source:
        lines += ["", "## Results per source (confound check)", "",
                  "| source | n | accuracy | true classes | predicted classes |", "| --- | --- | --- | --- | --- |"]
        for s, m in per_source.items():
            lines.append(f"| {s} | {m['n']} | {_f(m['accuracy'])} | {m['true']} | {m['predicted']} |")
        called = [f"{r['source']} {r['true class']}: {r['called covid']} of {r['n']} ({100 * r['share']:.1f}%)"
                  for r in covid_calls_by_source(per_source, covid)]
        if called:
            lines += ["", f"Non-COVID films called {covid}, by source and true class (kermany = children of one "
                          "hospital; nih = adults of one US hospital; cohen and figure1 = adults of the COVID-19 "
                          "collections): " + "; ".join(called) + "."]
        positive = [f"{r['source']} {r['true class']}: {r['called covid']} of {r['n']}"
                    for r in card.get("covid_calls_at_threshold") or [] if r["called covid"]]
        if positive:
            lines += ["", "Non-COVID films given a COVID-19 positive verdict at the operating threshold (the false "
                          "positives behind PPV): " + "; ".join(positive) + "."]
    rows = shortcut_lines(ckpt.get("metrics", {}).get("val", {}).get("shortcuts"), "VALIDATION") + \
        shortcut_lines((metrics or {}).get("shortcuts"), "TEST")
    if rows:
        lines += ["", "## Disease or hospital? (within-source figures)",
                  "Within one source the hospital, age group and markers are the same for both answers, so only the "
                  "lungs can separate them. AUCs near 0.5 mean the model reads the source, not the disease.", "",
                  "| split | question | AUC / accuracy | films (negative / positive) |", "| --- | --- | --- | --- |",
                  *rows]
    thorax = card.get("thorax_share")
    if thorax:
        lines += ["", "## Where the model looks (Grad-CAM on TEST)",
                  "Mean share of Grad-CAM energy inside the estimated thorax, per true class ("
                  + (f"a seeded random sample of at most {card.get('thorax_n', '?')} images per class"
                     if card.get("thorax_sample") == "seeded random" else
                     f"the first {card.get('thorax_n', '?')} images per class by file name")
                  + "): " + ", ".join(f"{c} {_f(v)}" for c, v in thorax.items()) +
                  ". Low values mean the evidence lies outside the chest (text markers, borders): a shortcut warning sign."]
    ood = ckpt.get("ood") or {}
    if ood:
        if ood.get("parts"):
            how = (f"- {ood.get('method', '?')} distance in each of {len(ood['parts'])} feature spaces "
                   f"({', '.join(p['name'] for p in ood['parts'])}), each divided by its own threshold (the "
                   f"{ood.get('percentile', '?')}th percentile of VALIDATION distances); flagged when any ratio is "
                   f"above 1 (together {_pct(ood.get('val_flagged'))} of VALIDATION images).")
        else:
            how = (f"- {ood.get('method', '?')} distance in penultimate-feature space; threshold "
                   f"{ood.get('threshold', 0):.1f} = the {ood.get('percentile', '?')}th percentile of VALIDATION scores.")
        if ood.get("refitted_with"):
            how += f" Refitted after training with `{ood['refitted_with']}` (weights unchanged)."
        lines += ["", "## Out-of-distribution score", how]
        check = card.get("ood_check")
        if check:
            lines.append(f"- Flagged as unlike the training data: {_pct(check['non_xray_flagged'])} of "
                         f"{check['non_xray_n']} non-X-ray images (noise, patterns, text, photo-like scenes), "
                         f"{_pct(check['transformed_xray_flagged'])} of {check['transformed_xray_n']} rotated or "
                         f"inverted TEST X-rays, and {_pct(check['test_flagged'])} of {check['test_n']} TEST X-rays "
                         "(goals: at least 95%, at least 95%, at most 5%).")
        new_source = card.get("ood_new_source")
        if new_source:
            lines.append("- Would it notice a new hospital? Refitted without one source's TRAIN and VALIDATION films, "
                         "the score flags this share of that source's TEST films (the network itself saw the source, "
                         "so a truly new hospital may look stranger): "
                         + "; ".join(f"{s} {_pct(v['flagged'])} of {v['n']}" for s, v in new_source.items())
                         + ". Where this is low, Diagnose's statement that the model is not validated at your "
                           "hospital is the safeguard, not this score.")
    lines += ["", "## Known limits", KNOWN_LIMITS, ""]
    return "\n".join(lines)


# Row names of bench/denoise.py's method x noise table (it imports them from here), which --record stores.
CLASSICAL_DENOISERS = ("gaussian", "median", "nlm", "bm3d")
DAE_ON_BM3D_IMAGES = "dae (BM3D's images)"  # the DAE on the first k images, the only ones BM3D runs on
DAE_GOAL_DB = 1.0  # the denoising issue's goal: beat the best tuned classical method by this much


def paired_interval(better: list[float], worse: list[float], level: float = 0.95) -> tuple[float, float] | None:
    """Two-sided ``level`` t-interval (dB) of the mean per-image difference ``better - worse`` (same images, same
    order); None when there are fewer than 2 pairs or the lists differ in length."""
    from scipy import stats

    if len(better) != len(worse) or len(better) < 2:
        return None
    d = np.asarray(better, float) - np.asarray(worse, float)
    half = stats.t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return float(d.mean() - half), float(d.mean() + half)


def dae_margins(bench: dict) -> dict:
    """{noise: {"best": classical method the DAE is closest to, "margin": DAE minus it in dB, "n": images,
    "interval": 95% interval of the margin or None}} from ``bench/denoise.py --record``'s rows. Each classical
    method is compared with the DAE on the same images: BM3D may run on the first k images only and then has its
    own DAE_ON_BM3D_IMAGES row. The interval needs the rows' per-image PSNRs (``psnr_each``, recorded since
    2026-12-01); it is paired by image, so it measures how sure the margin is, not how the images vary."""
    rows = bench.get("rows", [])
    out = {}
    for noise in dict.fromkeys(r["noise"] for r in rows):
        mine = {r["method"]: r for r in rows if r["noise"] == noise}
        if "dae" not in mine:
            continue
        pairs = []
        for method in CLASSICAL_DENOISERS:
            if method in mine:
                dae = mine["dae"]
                if mine[method]["n"] != dae["n"]:
                    dae = mine.get(DAE_ON_BM3D_IMAGES, {"n": None})
                if dae["n"] == mine[method]["n"]:
                    interval = paired_interval(dae.get("psnr_each", []), mine[method].get("psnr_each", []))
                    pairs.append((dae["psnr"] - mine[method]["psnr"], method, mine[method]["n"], interval))
        if pairs:
            margin, method, n, interval = min(pairs, key=lambda p: p[0])
            out[noise] = {"best": method, "margin": margin, "n": n, "interval": interval}
    return out


def _dae_benchmark_lines(bench: dict | None) -> list[str]:
    if not bench:
        return ["## TEST benchmark", "- None recorded in this checkpoint. Measure it with "
                "`python bench/denoise.py --parts table --record` (see `docs/denoising.md`)."]
    lines = ["## TEST benchmark (PSNR dB, classical methods tuned per noise level on TRAIN)",
             f"Measured {bench.get('measured', '?')} with `{bench.get('command', '?')}`.", "",
             "| noise | method | PSNR dB | SSIM | ms / 512x512 image | images |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['noise']} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['ms']:.0f} | {r['n']} |"
              for r in bench.get("rows", []) if r["method"] != "noisy input"]
    lines += ["", "The DAE against the best tuned classical method on the same images "
              f"(goal: at least +{DAE_GOAL_DB:.1f} dB at Gaussian sigma 25 and on Poisson noise):"]
    lines += [f"- {noise}: {m['margin']:+.2f} dB against {m['best']} on {m['n']} images"
              + (f" (95% interval {m['interval'][0]:+.2f} to {m['interval'][1]:+.2f} dB, paired by image)"
                 if m["interval"] else "")
              + f" ({'meets' if m['margin'] >= DAE_GOAL_DB else 'below'} +{DAE_GOAL_DB:.1f} dB)"
              for noise, m in dae_margins(bench).items()]
    return lines


def dae_card_markdown(ckpt: dict, name: str) -> str:
    """The model card of a denoising-autoencoder checkpoint dict."""
    cfg = ckpt.get("train_config", {})
    val = ckpt.get("metrics", {}).get("val_psnr", {})
    noise = ", ".join(f"{k.replace(':', ' ')}: {v:.2f} dB" for k, v in val.items() if k != "mean")
    return "\n".join([
        f"# Model card: `{name}` (denoising autoencoder)", "",
        "_Generated by `python -m covid_core model-card` from the checkpoint's metadata. Research use only._", "",
        "## Model",
        f"- Residual encoder-decoder predicting the noise; architecture {ckpt.get('arch', {})}",
        f"- Trained blind over noise levels: Gaussian sigma {cfg.get('sigma_min')}-{cfg.get('sigma_max')} (0-255 scale), "
        f"Poisson {cfg.get('photons_min')}-{cfg.get('photons_max')} photons, on random {cfg.get('crop')} px crops of TRAIN",
        f"- Created {ckpt.get('created', '?')}, torch {ckpt.get('torch_version', '?')}, epoch {ckpt.get('epoch', '?')}",
        "", "## Data",
        f"- Data set fingerprint: `{ckpt.get('data_fingerprint', '?')}` (coronahack-mini TRAIN; validation carved from TRAIN)",
        "", "## Reproduce",
        f"```\n{dae_reproduce_command(cfg, f'weights/{name}')}\n```",
        f"- Training time: {ckpt.get('training_time_s', '?')} s on {ckpt.get('hardware', '?')}",
        "", "## Validation PSNR (crops)", f"- {noise or 'n/a'}", "",
        *_dae_benchmark_lines(ckpt.get("test_benchmark")),
        "", "## Known limits",
        "- Compared on synthetic noise with known levels; the classical methods were given settings tuned for each",
        "  level, the DAE is blind (one model for all levels). More figures: `docs/denoising.md`.",
        "- It smooths burned-in text and fine lines; it is shown beside the original, never instead of it.",
        "- Trained on synthetic Gaussian and Poisson noise added to already-processed JPEG films, not on raw detector",
        "  noise; real low-dose noise may differ.", ""])
