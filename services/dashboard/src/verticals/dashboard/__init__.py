"""Management dashboard of the suite: the model registry, the news monitor's trends and alerts,
the support bot's handoffs and knowledge bases, the recommender's figures."""
