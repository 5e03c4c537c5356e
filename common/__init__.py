"""Generic pieces shared by `tasks` and `baselines`: the listable `Registry` and the `Dataset` type of
demonstrations. This package depends on neither of them (nor on `benchmark`), so both can build on it
without reaching into each other."""
