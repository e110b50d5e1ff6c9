"""The trained model's behaviour: a real training run on DATA (skipped without it), scored on EVAL."""
