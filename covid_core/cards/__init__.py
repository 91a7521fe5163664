"""Model cards written from checkpoints: ``classifier`` and ``dae`` (denoiser)."""
