"""Analysis stage (docs/method.md): token clustering of hidden states and teacher-forced calibration.

- ``ual.analysis.references``: the held-out records: the scenario's own datasets minus training (clustering)
  and the references of each task type (calibration).
- ``ual.analysis.hidden_states``: the teacher-forced pass: hidden states that predict each reference token,
  streamed to ``.npy`` memmaps (memory bounded by ``analysis.max_states``), and LM-head token statistics of
  the scored references in the same forward.
- ``ual.analysis.metrics``: silhouette (cosine), Davies-Bouldin and Calinski-Harabasz with bootstrap
  intervals (pure numpy / scikit-learn).
- ``ual.analysis.calibration``: NLL, entropy, ECE, Brier, sample bootstrap and paired differences,
  reliability curves (pure).
- ``ual.analysis.tsne``: the t-SNE embedding and the figure with one panel per model.
- ``ual.analysis.clustering``: per-model clustering measures, paired differences, clustering.json.
- ``ual.analysis.stage``: the CLI ``python -m ual.analysis`` (one pass per model; see there).
"""
