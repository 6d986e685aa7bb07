"""``bau app``: the Streamlit app for exploring runs and checkpoints in a browser.

``streamlit run app/main.py -- --runs RUNS`` (or ``bau app --runs RUNS``) serves four pages:

- Runs: every run under RUNS (sweeps included) with config, loss curves, evaluations, comparison.
- Geometry: alignment / uniformity (Eqs. 1-2), per-domain uniformity and a t-SNE of a checkpoint.
- Retrieval: a query's ranked gallery with true matches marked, and Grad-CAM overlays.
- Augmentations: original vs augmented views of an image and their weight scores w (Eq. 4).

The pages live in ``app/views/``; ``app/main.py`` draws the shared sidebar (``app.session``) and
routes to them with ``st.navigation``. What the app shows comes from the run layer it shares with
``bau sweep`` and the figure scripts: ``bau.runs`` (finding and reading run and sweep folders),
``bau.runs.checkpoint.load_model`` (models, kept in memory per checkpoint), ``bau.runs.features.feature_set``
(features, cached in ``.bau_cache`` next to each checkpoint, ``bau.runs.cache``) and
``bau.runs.weight_scores`` (Eq. 4); the analysis itself comes from ``analysis`` (geometry, t-SNE,
Grad-CAM, retrieval ranking). The modules under the pages hold no Streamlit code and are tested
on their own: ``app.paths`` (the runs root, the "stay inside it" rule, the check of every typed
path), ``app.runs`` (the Runs page's tables), ``app.embeddings`` (cached t-SNE and geometry of a
feature set), ``app.charts`` (Altair charts) and ``app.images`` (thumbnails and frames).
"""
