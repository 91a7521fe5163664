"""The score a heatmap explains: the network's logit for a class, or the logit of the site's head that decides it.

At a site whose validation fitted a head on the frozen features, that head, not the network's own logit, decides
what the reader is told: the COVID-19 head's probability is what the verdict's threshold compares, and the
pneumonia head makes the call between normal and pneumonia under a negative verdict. A heatmap of the network's
logit would then show what pushed a score that decided nothing. A head is a linear function of the penultimate
features, so it is one more output of the same network (:class:`WithSiteHeads`), and Grad-CAM follows its gradient
back to the same layer; the faithfulness metric measures the drop in the head's probability.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..checkpoint import Classifier
from ..formatting import possessive
from ..models import model_features
from ..site_file import CALL_CLASSES
from ..targets import COVID_CLASS


def _linear(heads: list[dict]) -> nn.Linear:
    """One output per head: ((f - mean) / scale) @ coef + intercept, as ``Site.head_probability`` computes it."""
    weight = np.stack([np.asarray(h["coef"], np.float64) / np.asarray(h["scale"], np.float64) for h in heads])
    bias = [float(h["intercept"]) - float(np.asarray(h["mean"], np.float64) @ w) for h, w in zip(heads, weight)]
    layer = nn.Linear(weight.shape[1], len(heads))
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        layer.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return layer.requires_grad_(False)


class WithSiteHeads(nn.Module):
    """The network with its site's heads as extra outputs: the logits BxC, then one logit per head."""

    def __init__(self, model: nn.Module, heads: list[dict]):
        super().__init__()
        self.model, self.heads = model, _linear(heads)

    @property
    def wraps(self) -> nn.Module:
        """The shared network, whose lock a pass of this module holds (:func:`~covid_core.models.forward_lock`)."""
        return self.model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits, features = model_features(self.model, x)
        head_logits = self.heads(features["penultimate"].to(self.heads.weight.dtype))
        return torch.cat([logits, head_logits.to(logits.dtype)], dim=-1)


@dataclass(frozen=True)
class ExplainedScore:
    """What a heatmap follows for one film: output ``column`` (a class's logit, or a head's after the classes),
    times ``sign`` (a head for pneumonia explains 'normal' as its logit's opposite); ``column`` None is the
    network's top class. ``classes``: how many of the output's columns are the network's classes (None: all of
    them). ``by`` names the head in words, "" for the network."""

    column: int | None
    classes: int | None = None
    temperature: float = 1.0
    sign: float = 1.0
    by: str = ""

    def _column(self, output: torch.Tensor) -> int:
        return int(output[..., :self.classes].argmax(dim=-1)) if self.column is None else self.column

    def logit(self, output: torch.Tensor) -> torch.Tensor:
        """The score Grad-CAM follows, for one film's outputs."""
        return self.sign * output[..., self._column(output)]

    def probability(self, output: torch.Tensor) -> torch.Tensor:
        """The calibrated probability the faithfulness metric watches, for one film's outputs: the head's, or the
        class's."""
        if self.by:
            return torch.sigmoid(self.logit(output))
        return torch.softmax(output[..., :self.classes] / self.temperature, dim=-1)[..., self._column(output)]


def explained_score(classifier: Classifier, class_index: int | None,
                    site_heads: bool = True) -> tuple[nn.Module, ExplainedScore]:
    """(the module to run, the score to explain) for class ``class_index`` of ``classifier`` (None: its top class,
    the network's). With ``site_heads``, the COVID-19 class at a site with a COVID-19 head (and a two-class COVID-19
    model's other class), and normal or pneumonia at a site with a pneumonia head, are explained by that head; any
    other class by the network's own logit."""
    site, classes = classifier.site, list(classifier.classes)
    network = ExplainedScore(class_index, len(classes), classifier.scoring_temperature)
    if site is None or class_index is None or not site_heads:
        return classifier.model, network
    name, covid = classes[class_index], COVID_CLASS.get(classifier.target)
    if site.head is not None and (name == covid or (covid in classes and len(classes) == 2)):
        head, sign = site.head, 1.0 if name == covid else -1.0  # a two-class model's other class: not COVID-19
    elif name in CALL_CLASSES and site.pneumonia_head is not None:
        head, sign = site.pneumonia_head, 1.0 if name == "pneumonia" else -1.0  # p(pneumonia rather than normal)
    else:
        return classifier.model, network
    return (WithSiteHeads(classifier.model, [head]).to(classifier.device),
            ExplainedScore(len(classes), len(classes), sign=sign,
                           by=f"the head fitted on {possessive(site.name)} films"))
