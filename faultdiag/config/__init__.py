"""Run configuration: the schema (:mod:`~faultdiag.config.schema`) and its TOML side (:mod:`~faultdiag.config.io`)."""

from faultdiag.config.io import (config_diff, config_from_dict, config_to_dict, dumps_toml, load_config,
                                 parse_overrides, replace_in, save_config, training_key)
from faultdiag.config.schema import (ADAPT_METHODS, BAND_METHODS, DATA_SOURCES, FRONT_END_KINDS, NOISE_KINDS, NOISE_MODES, NOISE_PER,
                                     PROTOCOLS, SECTIONS, AdaptConfig, DataConfig, FrontEndConfig, ModelConfig, NoiseConfig,
                                     RunConfig, SweepConfig, TrainConfig)

__all__ = ["RunConfig", "DataConfig", "FrontEndConfig", "NoiseConfig", "ModelConfig", "TrainConfig", "AdaptConfig",
           "SweepConfig", "SECTIONS", "ADAPT_METHODS",
           "DATA_SOURCES", "FRONT_END_KINDS", "BAND_METHODS", "NOISE_KINDS", "NOISE_MODES", "NOISE_PER", "PROTOCOLS",
           "load_config", "config_from_dict", "config_to_dict", "dumps_toml", "save_config", "replace_in",
           "parse_overrides", "training_key", "config_diff"]
