"""The call a reader is told agrees with the COVID-19 verdict, which the operating threshold decides."""

from __future__ import annotations

import numpy as np

from covid_core.inference import Prediction
from covid_core.verdict import headline


def _prediction(normal: float, pneumonia: float, covid: float, threshold: float, **kwargs) -> Prediction:
    probabilities = {"normal": normal, "pneumonia": pneumonia, "covid19": covid}
    return Prediction(probabilities=probabilities, label=max(probabilities, key=probabilities.get),
                      covid_positive=covid >= threshold, covid_probability=covid, threshold=threshold,
                      ood_score=0.1, ood_flagged=False, pixels_u8=np.zeros((4, 4), np.uint8), geometry=None,
                      **kwargs)


def test_a_positive_verdict_below_another_class_is_called_covid_and_says_what_was_more_probable():
    p = _prediction(0.20, 0.45, 0.35, threshold=0.30)
    assert p.label == "pneumonia" and p.call == "covid19"
    h = headline(p)
    assert h.title == "COVID-19-like pneumonia" and h.tone == "positive"
    assert h.covid_line == ("COVID-19: positive (probability 35%, at or above the operating threshold of 30%); "
                            "the model finds pneumonia more probable (45%)")
    assert headline(_prediction(0.40, 0.25, 0.35, threshold=0.30)).covid_line.endswith(
        "the model finds a normal film more probable (40%)")


def test_a_negative_verdict_on_a_film_most_probably_covid_is_called_by_the_most_probable_other_class():
    p = _prediction(0.15, 0.30, 0.55, threshold=0.60)  # a site's threshold can sit above 0.5
    assert p.call == "pneumonia"
    h = headline(p)
    assert h.title == "Pneumonia, not COVID-19-like" and h.tone == "abnormal"  # a negative verdict, not good news
    assert h.covid_line.endswith("below the operating threshold of 60%); the network still ranks COVID-19 first (55%)")


def test_where_verdict_and_most_probable_class_agree_nothing_is_added():
    for p in (_prediction(0.7, 0.2, 0.1, 0.3), _prediction(0.1, 0.2, 0.7, 0.3), _prediction(0.2, 0.6, 0.2, 0.3)):
        assert p.call == p.label and ";" not in headline(p).covid_line


def test_without_a_verdict_the_call_is_the_most_probable_class():
    p = _prediction(0.20, 0.45, 0.35, threshold=0.30, not_validated=True)
    assert p.call == "pneumonia" and headline(p).title.startswith("No verdict")


def test_the_calls_colour_is_good_news_only_where_no_pneumonia_is_seen():
    assert headline(_prediction(0.7, 0.2, 0.1, 0.3)).tone == "negative"
    assert headline(_prediction(0.2, 0.7, 0.1, 0.3)).tone == "abnormal"
    assert headline(_prediction(0.1, 0.2, 0.7, 0.3)).tone == "positive"
    assert headline(_prediction(0.2, 0.45, 0.35, 0.3)).tone == "positive"  # the threshold's call, not the top class
    two = Prediction(probabilities={"normal": 0.3, "pneumonia": 0.7}, label="pneumonia", covid_positive=None,
                     covid_probability=None, threshold=None, ood_score=0.1, ood_flagged=False,
                     pixels_u8=np.zeros((4, 4), np.uint8), geometry=None)
    assert headline(two).tone == "abnormal"
    assert headline(Prediction(**{**two.__dict__, "probabilities": {"normal": 0.7, "pneumonia": 0.3},
                                  "label": "normal"})).tone == "neutral"


def test_a_model_without_a_covid_class_never_calls_a_film_not_covid_like():
    """A normal/pneumonia model (``--target pneumonia``) learned COVID-19 films as pneumonia: its pneumonia call says
    nothing about COVID-19, so its words must not say "not COVID-19-like"."""
    two = Prediction(probabilities={"normal": 0.3, "pneumonia": 0.7}, label="pneumonia", covid_positive=None,
                     covid_probability=None, threshold=None, ood_score=0.1, ood_flagged=False,
                     pixels_u8=np.zeros((4, 4), np.uint8), geometry=None)
    h = headline(two)
    assert h.title == "Pneumonia (COVID-19 or another cause)" and "not COVID" not in h.title and h.covid_line == ""
    normal = Prediction(**{**two.__dict__, "probabilities": {"normal": 0.7, "pneumonia": 0.3}, "label": "normal"})
    assert headline(normal).title == "No pneumonia seen"


def test_the_verdicts_percentages_never_round_to_certainty_or_onto_the_threshold():
    sure = headline(_prediction(0.002, 0.003, 0.995, threshold=0.78)).covid_line
    assert "probability 99.5%," in sure and "100%" not in sure  # 99.5% is not certainty
    assert "probability >99.99%," in headline(_prediction(0.0, 0.00001, 0.99999, threshold=0.78)).covid_line
    low = headline(_prediction(0.996, 0.0, 0.004, threshold=0.3)).covid_line
    assert "probability 0.4%, below" in low
    close = headline(_prediction(0.1, 0.124, 0.776, threshold=0.784)).covid_line  # both read 78% at whole percents
    assert "probability 77.6%, below the operating threshold of 78.4%" in close
    closer = headline(_prediction(0.1, 0.1251, 0.7749, threshold=0.7751)).covid_line
    assert "probability 77%, below the operating threshold of 78%" in closer  # they read apart at whole percents
    assert "probability 35%, at or above the operating threshold of 30%" in headline(
        _prediction(0.20, 0.45, 0.35, threshold=0.30)).covid_line  # whole percents where they say it
