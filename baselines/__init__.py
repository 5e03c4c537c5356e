"""Diffusion policy and co-training methods behind one interface."""
from .data import (MixedSampler, Windows, default_ratio, make_windows, natural_ratio, odds_rule,
                   sqrt_rule)
from .checkpoints import load_checkpoint, read_checkpoint_meta, restore_checkpoint, save_checkpoint
from .ema import EMA
from .methods import (METHODS, Method, default_hparams, describe, domain_id, make_sampler, random_hparams,
                      resolve_hparams, scale_free, validate_hparams)
from . import alignment  # noqa: F401  (registers ot, adda, cfg_adda)
from .check import MethodCheckError, check_method
from .policy import NULL_DOMAIN, DiffusionPolicy, Normalizer, PolicyConfig

__all__ = ["MixedSampler", "Windows", "default_ratio", "make_windows", "natural_ratio", "odds_rule", "sqrt_rule",
           "default_hparams", "describe", "random_hparams", "resolve_hparams", "validate_hparams",
           "METHODS", "Method", "MethodCheckError", "check_method", "domain_id", "load_checkpoint", "make_sampler",
           "read_checkpoint_meta", "restore_checkpoint", "save_checkpoint", "scale_free", "EMA", "NULL_DOMAIN",
           "DiffusionPolicy", "Normalizer", "PolicyConfig"]
