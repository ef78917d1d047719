"""Both training stages of SonicDiffusion (paper §3.3-3.4): losses, batch sampling, the loop, stage 1, stage 2."""
