"""Oracles the equivalence tests compare against, kept outside the package
they check: the padded-window formulation of masked window attention
(:mod:`reference.padded_window`) and a transcription of the official
MixMIM model code (:mod:`reference.official_mixmim`)."""
