"""Deep Residual Shrinkage Networks and their baselines."""
