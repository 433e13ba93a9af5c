"""NCSN++ score network (Song et al. 2021) and its building blocks."""

from esdiff.nn.ncsnpp import ScoreModel, build_score_model, count_parameters

__all__ = ["ScoreModel", "build_score_model", "count_parameters"]
