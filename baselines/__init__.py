"""Diffusion policy and co-training methods behind one interface."""
from .data import (MixedSampler, Windows, default_ratio, make_windows, natural_ratio, odds_rule,
                   sqrt_rule)
from .hparams import HPARAMS, default_hparams, describe, random_hparams, resolve_hparams, validate_hparams
from .checkpoints import load_checkpoint, read_checkpoint_meta, restore_checkpoint, save_checkpoint
from .ema import EMA
from .methods import METHODS, Method, domain_id, make_sampler, scale_free
from .policy import NULL_DOMAIN, DiffusionPolicy, Normalizer, PolicyConfig

__all__ = ["MixedSampler", "Windows", "default_ratio", "make_windows", "natural_ratio", "odds_rule", "sqrt_rule",
           "HPARAMS", "default_hparams", "describe", "random_hparams", "resolve_hparams", "validate_hparams",
           "METHODS", "Method", "domain_id", "load_checkpoint", "make_sampler", "read_checkpoint_meta",
           "restore_checkpoint", "save_checkpoint", "scale_free", "EMA", "NULL_DOMAIN", "DiffusionPolicy", "Normalizer", "PolicyConfig"]
