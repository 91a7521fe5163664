"""Train: start train.py as a separate process and follow every run live."""

from __future__ import annotations

import os

import streamlit as st

import run_panel
import ui
from covid_core import jobs
from covid_core.errors import CovidCoreError
from covid_core.augment import AUGMENTATION_CHOICES
from covid_core.balance import BALANCE_CHOICES, BALANCE_LABELS
from covid_core.models import get_spec, list_models
from covid_core.runs import default_runs_dir
from covid_core.preprocess import EQUALIZE_CHOICES, FIT_CHOICES, FIT_LABELS
from covid_core.targets import TARGETS
from covid_core.flags import MAX_BATCH, MAX_SEED, help_for
from covid_core.training import RUN_FLAGS, TRAIN_FLAGS, TrainConfig

st.title("Train")
st.caption(f"The form starts at the shipped resnet18's recipe. "
           f"Runs are separate processes: they keep going if you close this tab or reload the page. "
           f"Run folders: `{default_runs_dir().resolve()}` (set `COVID_CORE_RUNS` to change).")

D = TrainConfig()  # the form's defaults and ranges are TrainConfig's; it refuses what the widgets cannot express
EMA_DECAY = D.ema_decay or 0.99  # the chosen recipe's decay (docs/shortcuts.md), also when the box is ticked


def tip(field: str, prefix: str = "") -> str:
    return prefix + help_for(TRAIN_FLAGS, field)


with st.form("train_form", enter_to_submit=False):  # Enter in a field must not start a run
    c1, c2, c3 = st.columns(3)
    task = c1.radio("Task", ["classify", "denoise"], horizontal=True, key="train_task",
                    format_func=lambda t: {"classify": "Classifier", "denoise": "Denoiser (DAE)"}[t])
    model = c2.selectbox("Architecture", list_models(), index=list_models().index(D.model), key="train_model",
                         format_func=lambda m: f"{m} - {get_spec(m).description}"[:70],
                         help="Classifier only; the denoiser has its own architecture.")
    target = c3.selectbox("Target", list(TARGETS), key="train_target", help=tip("target"))
    c4, c5, c6, c7 = st.columns(4)
    epochs = c4.number_input("Epochs", min_value=1, max_value=1000, value=D.epochs, step=1, key="train_epochs",
                             help="Classifier only: the denoiser trains with its own epochs, batch and learning rate.")
    batch_size = c5.number_input("Batch size", min_value=1, max_value=MAX_BATCH, value=D.batch_size, step=1,
                                 key="train_bs")
    lr = c6.number_input("Learning rate", min_value=1e-6, max_value=1.0, value=D.lr, step=1e-4, format="%.5f",
                         key="train_lr", help=tip("lr"))
    image_size = c7.number_input("Image size (0 = model default)", min_value=0, max_value=1024, value=0, step=16,
                                 key="train_size", help=tip("image_size", "0, or 32 to 1024. "))
    c8, c9, c10 = st.columns(3)
    augment = c8.checkbox("Augmentation", value=D.augment, key="train_aug", help=tip("augment"))
    ema = c9.checkbox("Weight averaging", value=D.ema_decay > 0, key="train_ema",
                      help=tip("ema_decay", f"Classifier only, decay {EMA_DECAY}. "))
    pretrained = c10.checkbox("ImageNet weights", value=False, key="train_pretrained",
                              help="Start from torchvision's ImageNet weights (downloaded, or from the torch hub "
                                   "cache); from a weights file of your own: train.py --pretrained FILE")
    c11, c12, c13, c14 = st.columns(4)  # what the network sees
    balance = c11.selectbox("Imbalance", BALANCE_CHOICES, index=BALANCE_CHOICES.index(D.balance), key="train_balance",
                            format_func=BALANCE_LABELS.get, help=tip("balance", "Classifier only. "))
    augmentation = c12.selectbox("Augmentation strength", AUGMENTATION_CHOICES, key="train_augmentation",
                                 help=tip("augmentation"))
    fit = c13.selectbox("Framing", FIT_CHOICES, key="train_fit", format_func=FIT_LABELS.get, help=tip("fit"))
    equalize = c14.selectbox("Contrast equalisation", EQUALIZE_CHOICES, key="train_equalize", help=tip("equalize"))
    c20, c21, c22 = st.columns(3)
    sensitivity = c20.number_input("COVID-19 sensitivity target", min_value=0.5, max_value=0.99, step=0.01,
                                   value=D.covid_sensitivity, key="train_sensitivity", help=tip("covid_sensitivity"))
    seed = c21.number_input("Seed", min_value=0, max_value=MAX_SEED, value=D.seed, step=1, key="train_seed",
                            help=tip("seed"))
    limit = c22.number_input("Images per split (0 = all)", min_value=0, value=0, step=10, key="train_limit",
                             help=tip("limit", "0 for all, or at least 8. "))
    with st.expander("Methods against source shortcuts (research; 0 is off)"):
        st.caption("Each was measured on this data (docs/shortcuts.md): none gave fewer wrong COVID-19 verdicts at a "
                   "hospital left out of training, so the shipped models use none. Leave a source out to measure one "
                   "that way.")
        c23, c19, c15, c16, c17 = st.columns(5)
        holdout = c23.text_input("Leave a source out", key="train_holdout", placeholder="e.g. nih",
                                 help=tip("holdout_source"))
        patch = c19.number_input("Patch crop (share)", min_value=0.0, max_value=0.95, value=D.patch_crop, step=0.05,
                                 key="train_patch", help=tip("patch_crop", "Classifier only; 0, or 0.25 to 0.95. "))
        adversary = c15.number_input("Source adversary weight", min_value=0.0, max_value=10.0, step=0.1,
                                     value=D.source_adversary, key="train_adversary",
                                     help=tip("source_adversary", "Classifier only. "))
        amplitude = c16.number_input("Amplitude mix (share)", min_value=0.0, max_value=1.0, value=D.amplitude_mix,
                                     step=0.1, key="train_amplitude", help=tip("amplitude_mix", "Classifier only. "))
        randconv = c17.number_input("Random conv (share)", min_value=0.0, max_value=1.0, value=D.random_conv,
                                    step=0.1, key="train_randconv", help=tip("random_conv", "Classifier only. "))
        c18, c25, c26, c27, c24 = st.columns(5)
        source_mix = c18.number_input("Source mix (share)", min_value=0.0, max_value=1.0, value=D.source_mix,
                                      step=0.1, key="train_source_mix", help=tip("source_mix", "Classifier only. "))
        group_dro = c25.number_input("Group DRO step", min_value=0.0, max_value=1.0, value=D.group_dro, step=0.01,
                                     key="train_group_dro", help=tip("group_dro", "Classifier only. "))
        contrast = c26.number_input("Source contrast weight", min_value=0.0, max_value=10.0, value=D.source_contrast,
                                    step=0.1, key="train_contrast", help=tip("source_contrast", "Classifier only. "))
        mix_style = c27.number_input("MixStyle (share)", min_value=0.0, max_value=1.0, value=D.mix_style, step=0.1,
                                     key="train_mix_style", help=tip("mix_style", "Classifier only. "))
        prior = c24.number_input("Source prior weight", min_value=0.0, max_value=1.0, value=D.source_prior,
                                 step=0.1, key="train_source_prior", help=tip("source_prior", "Classifier only. "))
    data = st.text_input("Data folder", value=st.session_state.get("data_folder") or os.environ.get(
        "COVID_XRAY_DATA", ""), key="train_data", placeholder="/path/to/coronahack")
    skip_unreadable = st.checkbox("Leave out unreadable films", value=D.skip_unreadable, key="train_skip",
                                  help=help_for(RUN_FLAGS, "skip_unreadable"))
    submitted = st.form_submit_button("Start training", type="primary", icon=":material/play_arrow:")

if submitted:
    config = TrainConfig(target=target, model=model, epochs=int(epochs), batch_size=int(batch_size), lr=float(lr),
                         image_size=int(image_size) or None, fit=fit, equalize=equalize, seed=int(seed),
                         covid_sensitivity=float(sensitivity), augment=bool(augment), augmentation=augmentation,
                         amplitude_mix=float(amplitude), random_conv=float(randconv), source_mix=float(source_mix),
                         patch_crop=float(patch), pretrained="imagenet" if pretrained else "none",
                         balance=balance, ema_decay=EMA_DECAY if ema else 0.0, source_adversary=float(adversary),
                         group_dro=float(group_dro), source_contrast=float(contrast), mix_style=float(mix_style),
                         source_prior=float(prior), holdout_source=holdout.strip(), limit=int(limit) or None,
                         skip_unreadable=bool(skip_unreadable))
    try:
        job = jobs.start_from_form(config, data, task)
    except CovidCoreError as exc:
        st.error(f"Not started: {ui.plain(exc)}", icon=":material/block:")
    except Exception as exc:  # never a traceback with server paths in the browser
        st.error(f"Not started: the run could not be launched ({type(exc).__name__}).", icon=":material/block:")
    else:
        st.success(f"Started run `{job.run_id}` (process {job.pid}).", icon=":material/rocket_launch:")


run_panel.runs_panel()
