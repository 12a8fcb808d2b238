"""Token-clustering analysis (docs/method.md): do UAL-trained models cluster hidden states better?

- ``ual.analysis.hidden_states``: teacher-forced collection of the hidden states that predict each reference
  response token, streamed to ``.npy`` memmaps (memory bounded by ``analysis.max_states``).
- ``ual.analysis.metrics``: silhouette (cosine), Davies-Bouldin and Calinski-Harabasz with bootstrap
  intervals (pure numpy / scikit-learn).
- ``ual.analysis.tsne``: the t-SNE embedding and the figure with one panel per model.
- ``ual.analysis.clustering``: per-model analysis, paired differences, outputs, and the CLI
  ``python -m ual.analysis.clustering --experiment experiments/tiny.yaml --scenario mixed
  --models sft=DIR ls=DIR ual=DIR --out results/tiny/analysis/mixed``.
"""
