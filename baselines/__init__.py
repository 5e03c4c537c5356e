"""Diffusion policy and co-training methods behind one interface."""
