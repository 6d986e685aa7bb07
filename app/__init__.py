"""``bau app``: the Streamlit app for exploring runs and checkpoints in a browser.

``streamlit run app/main.py -- --runs RUNS`` (or ``bau app --runs RUNS``) serves four pages:

- Runs: every run under RUNS (sweeps included) with config, loss curves, evaluations, comparison.
- Geometry: alignment / uniformity (Eqs. 1-2), per-domain uniformity and a t-SNE of a checkpoint.
- Retrieval: a query's ranked gallery with true matches marked, and Grad-CAM overlays.
- Augmentations: original vs augmented views of an image and their weight scores w (Eq. 4).

The pages live in ``app/views/``; ``app/main.py`` draws the shared sidebar (``app.session``) and
routes to them with ``st.navigation``. The modules under the pages hold no Streamlit code and
are tested on their own: ``app.paths`` (the runs root and the "stay inside it" rule),
``app.runs`` (finding and reading run and sweep folders), ``app.cache`` (the on-disk cache under
``RUNS/.bau_cache``), ``app.embeddings`` (cached features, t-SNE and geometry of a checkpoint),
``app.weights`` (Eq. 4 weights of a chosen image's augmented views), ``app.charts`` (Altair
charts) and ``app.images`` (thumbnails and frames). The analysis itself comes from ``analysis``
(geometry, t-SNE, Grad-CAM, retrieval ranking) and ``bau``.
"""
