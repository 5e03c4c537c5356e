"""Policies trained elsewhere, evaluated under the leaderboard track's evaluation protocol: the evaluator's side
of the policy link (`client`: `RemotePolicy` for a `cotrain_robot.policy_server.PolicyServer`, whose module
documents the messages, `load_callable` for a `package.module:function` in this process, `PolicyLinkError` for a
link fault), `evaluate`: `evaluate_policy` (episodes on the pair's target domain, resumable, a record named by the
policy's name and reported digest, flagged self-reported with its declared training data), and `rules`: the
external track's protocol and the rules its own board checks records by (`cotrain submit`)."""
from benchmark.external.client import LocalPolicy, PolicyFailure, PolicyLinkError, RemotePolicy, load_callable, open_policy
from benchmark.external.evaluate import evaluate_policy
from benchmark.external.rules import EXTERNAL_TRACK, check_external, eval_protocol

__all__ = ["EXTERNAL_TRACK", "LocalPolicy", "PolicyFailure", "PolicyLinkError", "RemotePolicy", "check_external",
           "eval_protocol", "evaluate_policy", "load_callable", "open_policy"]
