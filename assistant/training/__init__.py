"""Fitting the answer scorer on gold questions (`assistant train`) and measuring it out of sample (`--cv`).

Offline concerns, like evaluation: this package imports the answerer, never the other way round.
"""

from assistant.training.crossval import CVReport, cross_validate, fold_of
from assistant.training.fit import TrainReport, collect, fit_model, train

__all__ = ["CVReport", "TrainReport", "collect", "cross_validate", "fit_model", "fold_of", "train"]
