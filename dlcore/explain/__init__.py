"""Explain a model's output: attribution methods from captum and shap behind one registry whose entries declare
their parameters, faithfulness scores next to every explanation, and the cascading-randomisation sanity check.

Example:
    >>> from dlcore.explain import Subject, available_methods, explain, faithfulness
    >>> s = Subject.build(model, ds.info, x, background=ds.train[0][:100])
    >>> [m.key for m in available_methods(model)]
    >>> e = explain(s, "integrated_gradients", n_steps=50)
    >>> faithfulness(s, e).deletion_auc
"""
from dlcore.explain import methods as _methods  # noqa: F401  (registers the methods)
from dlcore.explain.faithfulness import (Faithfulness, faithfulness, infidelity_score, perturbation_curves,
                                         sensitivity_score)
from dlcore.explain.methods import TargetOutput, lime_feature_mask
from dlcore.explain.registry import (METHODS, Explanation, Method, Param, available_methods, choice, explain, flag,
                                     get_method, number, register, run_method, unavailable_methods)
from dlcore.explain.sanity import SanityResult, cascading_randomization, randomization_groups, rank_similarity
from dlcore.explain.subject import Subject, subject_for

__all__ = [
    "Subject", "subject_for", "METHODS", "Method", "Param", "Explanation", "number", "choice", "flag", "register", "get_method",
    "available_methods", "unavailable_methods", "explain", "run_method", "TargetOutput", "lime_feature_mask",
    "Faithfulness", "faithfulness", "perturbation_curves", "infidelity_score", "sensitivity_score",
    "SanityResult", "cascading_randomization", "randomization_groups", "rank_similarity",
]
