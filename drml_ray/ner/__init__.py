"""Named-entity recognition: features, model building, the Ray Train loop, evaluation, prediction."""
