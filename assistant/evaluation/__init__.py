"""Gold questions and retrieval/answer metrics (pure functions)."""
