"""The study track's analyses and their side-by-side with the study (`cotrain study RUNS_DIR`): the records
of a study-track sweep are read (:mod:`~benchmark.study.load`) against the study's design
(:mod:`~benchmark.study.design`), analysed with bootstrap intervals (:mod:`~benchmark.study.statistics`) in
six analyses (:mod:`~benchmark.study.analyses`, :mod:`~benchmark.study.window`,
:mod:`~benchmark.study.guidance`), and each of the study's claims gets a verdict
(:mod:`~benchmark.study.claims`) in ``COMPARISON.md`` (:mod:`~benchmark.study.report`, which lists every file
written).
"""
from benchmark.study.design import classify_regime
from benchmark.study.load import StudyData, load_study
from benchmark.study.report import analyze_study, study

__all__ = ["StudyData", "analyze_study", "classify_regime", "load_study", "study"]
