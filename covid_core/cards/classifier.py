"""The classifier's model card, generated from a checkpoint's metadata (never written by hand).

``python -m covid_core model-card weights/resnet18.pt --data DATA_DIR`` re-evaluates TEST, adds the
normal-vs-pneumonia analysis, per-source results and the Grad-CAM thorax share per class, stores them in
the checkpoint (key ``card``) and writes ``weights/resnet18.md``.
"""

from __future__ import annotations

import shlex

import numpy as np

from ..evaluation import (TEXTURE_SWAP_NOTE, WITHIN_SOURCE_INTERVALS_NOTE, covid_calls_by_source, shortcut_rows,
                          texture_swap_warning)
from ..goals import (GOAL_INTERVALS_NOTE, NEW_HOSPITAL_GOALS, UNSEEN_ADULT_NORMALS_COVID_VS_NORMAL_AUC,
                     UNSEEN_ADULT_NORMALS_WRONG_VERDICTS, UNSEEN_SOURCE_COVID_VS_NORMAL_AUC, UNSEEN_SOURCE_WRONG_VERDICTS,
                     goal_figure_text, goal_met_text, goal_rows, interval_text)
from ..targets import COVID_CLASS
from ..formatting import code_block, code_span, fixed, markdown_plain, pct
from ..model_summary import thorax_heatmap
from ..preprocess import PreprocessConfig
from ..training_data import training_data
from . import data_arguments, unreadable_lines

PUBLIC_DATA_LIMITS = """\
- Trained and tested on {name}, whose classes are still partly confounded with age and source:
  the children (normal and pneumonia) all come from one hospital (Guangzhou, Kermany et al.), the adult normals
  and most adult pneumonias from one US hospital (NIH Clinical Center), and the COVID-19 films from many
  hospitals and publications (the COVID-19 image collection, `cohen`, and Figure 1), which also hold the only
  48 adult non-COVID pneumonias from outside NIH. "An adult film not from NIH" therefore predicts COVID-19 on
  this data and will not at another hospital. The within-source figures above measure how far the model reads
  the disease rather than the source (DeGrave et al., Nature Machine Intelligence 2021).
- TEST is patient-disjoint from TRAIN but drawn from the same sources: expect lower figures at another
  hospital. Validate the model on your own labelled films: until then {until}.
- NIH labels were text-mined from reports; its "Pneumonia" label is its noisiest, and a few "No Finding"
  films show lines, tubes or opacities."""

OTHER_DATA_LIMITS = """\
- Trained and tested on {name}. Its TEST films come from the same data set as its TRAIN films: expect lower
  figures at a hospital whose films it does not hold. Validate the model on that hospital's own labelled films:
  until then {until} there.
- {sources}"""

COMMON_LIMITS = """\
- The out-of-distribution score flags images unlike the training data; it is not a guarantee, and films from
  a new hospital often pass it.
- Research use only, not for diagnosis."""


def known_limits(ckpt: dict) -> str:
    """The card's known limits: those of the public collections for a model trained on them, else those of any
    data set, and whether the card could measure source shortcuts at all."""
    data = training_data(ckpt)
    name = code_span(data.name) if data.name else "its training data"
    until = until_validated(ckpt)
    if data.public:
        return PUBLIC_DATA_LIMITS.format(name=name, until=until) + "\n" + COMMON_LIMITS
    sources = ("Its films come from several sources; the within-source figures above measure how far the model "
               "reads the disease rather than the source (DeGrave et al., Nature Machine Intelligence 2021), and "
               "classes that come from different sources can be told apart by the source alone."
               if len(data.sources) > 1 else
               "Its films come from one source, or name none (a provenance.csv beside the data gives each film's "
               "source and patient), so this card cannot measure whether the model reads the hospital rather than "
               "the disease: where the classes come from different hospitals or machines, it may.")
    return OTHER_DATA_LIMITS.format(name=name, sources=sources, until=until) + "\n" + COMMON_LIMITS


def until_validated(ckpt: dict) -> str:
    """What the model gives at a hospital before a site file validates it there, in words."""
    if COVID_CLASS.get(ckpt.get("target")) is None:  # its call between normal and pneumonia is all it says
        return "its calls are marked unconfirmed"
    return "it gives no COVID-19 verdict"


def reproduce_command(train_config: dict, out: str) -> str:
    """The train.py command line that reproduces a classifier from its saved config (settings that differ from
    the defaults, plus model, epochs, image size, balance, weight averaging, COVID-19 sensitivity target and seed,
    so that the command still holds if a default changes)."""
    from ..flags import config_argv
    from ..training import TRAIN_FLAGS, TrainConfig

    config = TrainConfig.from_dict(train_config)
    argv = config_argv(config, TRAIN_FLAGS, TrainConfig(), always=("model", "epochs", "image_size", "balance",
                                                               "ema_decay", "covid_sensitivity", "seed"))
    return shlex.join(["python", "train.py", *data_arguments(train_config), *argv, "--out", out])


def starting_weights_lines(ckpt: dict) -> list[str]:
    """The weights file training started from, with its digest: the command above needs that very file."""
    start = ckpt.get("starting_weights")
    if not isinstance(start, dict):
        return []
    return [f"- Started from the weights file {code_span(str(start.get('file', '?')))} (sha256 "
            f"{code_span(str(start.get('sha256', '?')))}); the command needs that file"]


def data_lines(ckpt: dict) -> list[str]:
    """The data set a model was trained on: its name, layout and fingerprint, and its films per source."""
    data = training_data(ckpt)
    layout = f", {markdown_plain(data.layout)} layout" if data.layout else ""
    fingerprint = code_span(ckpt.get("data_fingerprint", "?"))
    lines = [f"- Data set: {code_span(data.name or '?')}{layout}, fingerprint {fingerprint}"]
    if data.sources:
        lines.append("- Films per source: " + ", ".join(f"{markdown_plain(s)} {n}" for s, n in data.sources.items()))
    return lines + unreadable_lines(data)


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


def card_markdown(ckpt: dict, name: str, out_path: str) -> str:
    """The model card of a classifier checkpoint dict (with its ``card`` section if present)."""
    card = ckpt.get("card") or {}
    metrics = card.get("test") or (ckpt.get("metrics") or {}).get("test") or {}
    classes = ckpt["classes"]
    cfg = ckpt.get("train_config") or {}
    pre = PreprocessConfig.from_dict(ckpt["preprocess"])
    lines = [f"# Model card: `{name}`", "",
             "_Generated by `python -m covid_core model-card` from the checkpoint's metadata. Research use only, "
             "not for diagnosis._", "",
             *([f"**Not shown: parts of this checkpoint's metadata are damaged or laid out by another version** "
                f"({'; '.join(ckpt['damaged_sections'])})", ""] if ckpt.get("damaged_sections") else []),
             "## Model",
             f"- Architecture: `{ckpt['model_name']}`, target `{ckpt['target']}`, classes: {', '.join(classes)}",
             f"- Input: {pre.image_size} px, fit `{pre.fit}`, equalize `{pre.equalize}` (stored in the checkpoint, "
             "applied at inference)",
             f"- Package version {ckpt.get('package_version', '?')}, torch {ckpt.get('torch_version', '?')}, "
             f"created {ckpt.get('created', '?')}, best epoch {ckpt.get('epoch', '?')}",
             "", "## Data",
             *data_lines(ckpt),
             f"- Images per split and class: {ckpt.get('class_counts', {})}",
             "- Validation: carved from TRAIN, stratified by "
             f"{'finding (normal, pneumonia or COVID-19)' if cfg.get('val_strata') == 'finding' else 'class'} and "
             f"grouped by patient ({cfg.get('val_fraction', '?')} of TRAIN, seed {cfg.get('seed', '?')})",
             "", "## Reproduce",
             code_block(reproduce_command(cfg, out_path)),
             *starting_weights_lines(ckpt),
             f"- Training time: {ckpt.get('training_time_s', '?')} s on {ckpt.get('hardware', '?')} "
             + ("(including caching, calibration and TEST evaluation)" + _timing_text(ckpt["timing"]) if ckpt.get("timing")
                else "(caching and training epochs; this older checkpoint recorded it before the final calibration "
                     "and TEST evaluation)"),
             "", "## TEST metrics", ""]
    if metrics:
        lines += [f"- Images: {metrics.get('n')}; accuracy **{fixed(metrics.get('accuracy'))}**; macro AUC "
                  f"**{fixed(metrics.get('macro_auc'))}**{_macro_interval(metrics)}; expected calibration error "
                  f"{fixed(metrics.get('ece'))} "
                  f"(temperature {ckpt.get('temperature') or 1.0:.3f}, fitted on validation)", "",
                  "| class | support | sensitivity | specificity | PPV | AUC |", "| --- | --- | --- | --- | --- | --- |"]
        for c in classes:
            m = metrics["per_class"][c]
            lines.append(f"| {c} | {m.get('support', '')} | {fixed(m['sensitivity'])} | {fixed(m['specificity'])} | "
                         f"{fixed(m['ppv'])} | {fixed(m['auc'])} |")
        lines += ["", "Confusion matrix (rows true, columns predicted):", "",
                  "| true \\ predicted | " + " | ".join(classes) + " |", "| --- " * (len(classes) + 1) + "|"]
        for c, row in zip(classes, metrics["confusion_matrix"]):
            lines.append(f"| {c} | " + " | ".join(map(str, row)) + " |")
        pair = card.get("normal_vs_pneumonia")
        if pair:
            lines += ["", f"Normal vs pneumonia (the hard part; {pair['n']} TEST images whose true class is one of the "
                          f"two): AUC {fixed(pair['auc'])}, accuracy {fixed(pair['accuracy'])}."]
    thr = ckpt.get("threshold") or {}
    covid = COVID_CLASS.get(ckpt["target"])
    if thr:
        test = thr.get("test", {})
        lines += ["", "## Operating threshold (COVID-19 verdict)",
                  f"- `p({covid}) >= {thr['value']:.4f}` means COVID-19 positive; chosen on VALIDATION, never on TEST: "
                  f"{thr.get('rule', '')}",
                  f"- Validation: sensitivity {fixed(thr.get('val_sensitivity'))}, specificity "
                  f"{fixed(thr.get('val_specificity'))}",
                  f"- TEST at this threshold: sensitivity {fixed(test.get('sensitivity'))}, specificity "
                  f"{fixed(test.get('specificity'))}, PPV {fixed(test.get('ppv'))}"
                  + (f", NPV {fixed(test.get('npv'))} (true / false positives {test['tp']} / {test['fp']}, "
                     f"false / true negatives {test['fn']} / {test['tn']})" if "tp" in test else "")]
    per_source = metrics.get("per_source") if metrics else None
    if per_source:
        lines += ["", "## Results per source (confound check)", "",
                  "| source | n | accuracy | true classes | predicted classes |", "| --- | --- | --- | --- | --- |"]
        for s, m in per_source.items():
            lines.append(f"| {s} | {m['n']} | {fixed(m['accuracy'])} | {m['true']} | {m['predicted']} |")
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
    rows = [f"| {r['split']} | {r['question']} | {fixed(r['figure'])}"
            + (f" ({interval_text(r['interval'])})" if r["interval"] else "") + f" | {r['films']}"
            + ("" if r["positives labelled as such"] is None else
               f"; {pct(r['positives labelled as such'])} of the positives labelled as such") + " |"
            for r in shortcut_rows(ckpt)]
    if rows:
        lines += ["", "## Disease or hospital? (within-source figures)",
                  "Within one source the hospital, age group and markers are the same for both answers, so only the "
                  "lungs can separate them. AUCs near 0.5 mean the model reads the source, not the disease. "
                  + WITHIN_SOURCE_INTERVALS_NOTE + " " + TEXTURE_SWAP_NOTE, "",
                  "| split | question | figure (95% interval) | films (negative / positive) |",
                  "| --- | --- | --- | --- |",
                  *rows]
        texture = texture_swap_warning(ckpt)
        if texture:
            lines += ["", f"**Texture shortcut.** {texture}"]
    lines += goals_section(ckpt)
    thorax = card.get("thorax_share")
    if thorax:
        lines += ["", "## Where the model looks (heatmaps on TEST)",
                  f"Mean share of heatmap energy ({thorax_heatmap(card)}) inside the estimated thorax, per true class ("
                  + (f"a seeded random sample of at most {card.get('thorax_n', '?')} images per class"
                     if card.get("thorax_sample") == "seeded random" else
                     f"the first {card.get('thorax_n', '?')} images per class by file name")
                  + "): " + ", ".join(f"{c} {fixed(v)}" for c, v in thorax.items()) +
                  ". Low values mean the evidence lies outside the chest (text markers, borders): a shortcut warning sign."]
    ood = ckpt.get("ood") or {}
    if ood:
        if ood.get("parts"):
            how = (f"- {ood.get('method', '?')} distance in each of {len(ood['parts'])} feature spaces "
                   f"({', '.join(p['name'] for p in ood['parts'])}), each divided by its own threshold (the "
                   f"{ood.get('percentile', '?')}th percentile of VALIDATION distances); flagged when any ratio is "
                   f"above 1 (together {pct(ood.get('val_flagged'))} of VALIDATION images).")
        else:
            how = (f"- {ood.get('method', '?')} distance in penultimate-feature space; threshold "
                   f"{ood.get('threshold', 0):.1f} = the {ood.get('percentile', '?')}th percentile of VALIDATION scores.")
        if ood.get("refitted_with"):
            how += f" Refitted after training with `{ood['refitted_with']}` (weights unchanged)."
        lines += ["", "## Out-of-distribution score", how]
        check = card.get("ood_check")
        if check:
            lines.append(f"- Flagged as unlike the training data: {pct(check['non_xray_flagged'])} of "
                         f"{check['non_xray_n']} non-X-ray images (noise, patterns, text, photo-like scenes), "
                         f"{pct(check['transformed_xray_flagged'])} of {check['transformed_xray_n']} rotated or "
                         f"inverted TEST X-rays, and {pct(check['test_flagged'])} of {check['test_n']} TEST X-rays "
                         "(goals: at least 95%, at least 95%, at most 5%).")
        new_source = card.get("ood_new_source")
        if new_source:
            lines.append("- Would it notice a new hospital? Refitted without one source's TRAIN and VALIDATION films, "
                         "the score flags this share of that source's TEST films (the network itself saw the source, "
                         "so a truly new hospital may look stranger): "
                         + "; ".join(f"{s} {pct(v['flagged'])} of {v['n']}" for s, v in new_source.items())
                         + ". Where this is low, the safeguard is not this score but site validation: until a "
                           f"site file validates the model at your hospital, {until_validated(ckpt)} there.")
    lines += ["", "## Known limits", known_limits(ckpt), ""]
    return "\n".join(lines)


def goals_section(ckpt: dict) -> list[str]:
    """The goals (covid_core.goals) against this checkpoint's TEST figures, and the new-hospital goals, which TEST
    cannot measure. Empty for targets the goals do not apply to."""
    rows = goal_rows(ckpt)
    if not rows:
        return []
    return ["", "## Goals", "The goals the shipped 3-class models are held to, against this model's TEST figures.", "",
            "| goal | target | TEST (95% interval) | |", "| --- | --- | --- | --- |",
            *[f"| {r['goal']} | {r['target']} | {goal_figure_text(r)} | {_emphasised_if_missed(r)} |"
              for r in rows], "",
            GOAL_INTERVALS_NOTE, "",
            f"{NEW_HOSPITAL_GOALS} Not measured here: TEST holds no film from outside the training sources. Measure it "
            "at your hospital (Validate page, `validate-site`). The closest measurement on coronahack-mini, training "
            "without one source and scoring that source's films (`bench/shortcut_ablation.py`, docs/shortcuts.md), "
            f"ranked that source's normal adults against TEST's COVID-19 films at about chance (COVID-19 vs normal AUC "
            f"{UNSEEN_SOURCE_COVID_VS_NORMAL_AUC}) and gave {UNSEEN_SOURCE_WRONG_VERDICTS} of its films a wrong COVID-19 "
            "verdict, depending on the recipe and seed. With NIH's normal adults kept in training, as here, the shipped "
            "recipes, trained without the COVID-19 collections' 18 normal adults (of other hospitals), ranked those against "
            f"TEST's COVID-19 films at AUC {UNSEEN_ADULT_NORMALS_COVID_VS_NORMAL_AUC} and gave "
            f"{UNSEEN_ADULT_NORMALS_WRONG_VERDICTS} of them a wrong COVID-19 verdict "
            "(`bench/unseen_adult_normals.py`): expect this goal not to be met by the model's verdicts. This is why the "
            "app and the command line give no COVID-19 "
            "verdict until a site file validates the model at a hospital (research users can ask for the "
            "unconfirmed verdicts): before validation it gives none there, right or wrong."]


def _macro_interval(metrics: dict) -> str:
    text = interval_text((metrics.get("macro_auc_low"), metrics.get("macro_auc_high")))
    return f" (95% interval {text}, patients resampled)" if text else ""


def _emphasised_if_missed(row: dict) -> str:
    return f"**{goal_met_text(row)}**" if row["met"] is False else goal_met_text(row)
