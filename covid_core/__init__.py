"""covid_core: chest X-ray classification, denoising and explanation.

The package never imports streamlit; the app in ``app/`` is a thin UI over it.
One path for an image: bytes -> :func:`covid_core.decode.decode_image` ->
:func:`covid_core.preprocess.preprocess` -> (denoise) -> classify -> explain.
"""

__version__ = "0.1.0"
