"""Gap ablations: each gap factor alone (or a set of them moved together), at a ladder of magnitudes, on one base
task (`cotrain ablate`).

An ablation (`plan.Ablation`) crosses factors, magnitudes, methods and seeds, and spends training only where
the numbers depend on it. A method that uses no target data (`source_only`) does not depend on the target's
magnitude: it is trained once per seed on the gap-free base task, and its checkpoint is evaluated in every
(factor, magnitude) cell (`items.CellEval`, run by the sweep's `execute_nogap_eval`). The scripted expert's
success in each cell is measured the same way, without training (`items.ExpertEval`). Methods that train on
target data train per cell. At magnitude 0 every factor is the base task itself, so that cell is shared by all
factors. Everything lands in ordinary run folders (`execute.run_ablation`), so a second call skips what is
done. A run folder keeps its checkpoint: an MLP checkpoint is a few MB (about 12 MB at the quick profile, with
its EMA and optimizer state), so the source policies' folders may be committed and a later sitting evaluates
them in new cells without retraining. `report` turns the folders into tables and figures (a factor set read
against its factors alone); `reference.yaml` is the reference ablation in two stages (`stages`), `compounding.yaml`
three Lift factor sets beside their factors.
"""
